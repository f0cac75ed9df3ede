/**
 * The `poison-float-arrays` fault (shared/src/faults.ts): what a volunteer sending poisoned
 * gradients would send. Used only when a peer starts with that fault on, to show that robust
 * aggregation holds and a plain mean does not.
 */
import { decodeValue, encodeValue } from '@colony-grid/shared'

/** An encoded value with every Float32Array in it multiplied by -100 (the bytes as they are when it has none). */
export function poisoned(bytes: Uint8Array): Uint8Array {
  let value: unknown
  try { value = decodeValue(bytes) } catch { return bytes }
  let touched = false
  const walk = (v: unknown, depth: number): unknown => {
    if (v instanceof Float32Array) { touched = true; return v.map((x) => x * -100) }
    if (depth > 8 || !v || typeof v !== 'object' || ArrayBuffer.isView(v)) return v
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1))
    if (Object.getPrototypeOf(v) !== Object.prototype) return v
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, depth + 1)]))
  }
  const out = walk(value, 0)
  return touched ? encodeValue(out) : bytes
}
