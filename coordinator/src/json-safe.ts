/** Makes a decoded task value fit for a JSON response: typed arrays and binary are summarised, not exploded. */
export function jsonSafe(v: unknown, depth = 0): unknown {
  if (depth > 20) return '<too deep>'
  if (v === null || typeof v !== 'object') return typeof v === 'bigint' ? v.toString() : v
  if (ArrayBuffer.isView(v)) {
    const arr = v as unknown as ArrayLike<number>
    return { type: v.constructor.name, length: arr.length, head: Array.from({ length: Math.min(arr.length, 16) }, (_, i) => arr[i]) }
  }
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), jsonSafe(x, depth + 1)]))
  if (v instanceof Set) return [...v].map((x) => jsonSafe(x, depth + 1))
  if (Array.isArray(v)) return v.map((x) => jsonSafe(x, depth + 1))
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return (v as { toJSON(): unknown }).toJSON()
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = jsonSafe(x, depth + 1)
  return out
}
