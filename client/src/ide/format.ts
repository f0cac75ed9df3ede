/** Pretty-prints a job's result: JSON-like, with typed arrays and tensors summarized instead of dumped. */
const MAX_ITEMS = 50

function typedSummary(a: ArrayLike<number> & { constructor: { name: string } }): string {
  const n = a.length
  let min = Infinity, max = -Infinity, sum = 0
  for (let i = 0; i < n; i++) { const v = Number(a[i]); if (v < min) min = v; if (v > max) max = v; sum += v }
  const head = Array.from({ length: Math.min(n, 6) }, (_, i) => fmtNumber(Number(a[i]))).join(', ')
  return `${a.constructor.name}(${n}) [${head}${n > 6 ? ', …' : ''}]${n ? `  min ${fmtNumber(min)}, max ${fmtNumber(max)}, mean ${fmtNumber(sum / n)}` : ''}`
}

function fmtNumber(v: number): string { return Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString() }

function isTensorLike(v: object): v is { shape: number[]; data?: ArrayLike<number>; dtype?: string } {
  return Array.isArray((v as { shape?: unknown }).shape) && ('dtype' in v || ArrayBuffer.isView((v as { data?: unknown }).data))
}

export function formatValue(v: unknown, indent = ''): string {
  const next = `${indent}  `
  if (v === undefined) return 'undefined'
  if (typeof v === 'number') return fmtNumber(v)
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'string') return JSON.stringify(v)
  if (v === null || typeof v !== 'object') return String(v)
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return typedSummary(v as unknown as Float32Array)
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength} bytes)`
  if (isTensorLike(v)) {
    const data = ArrayBuffer.isView(v.data) ? `: ${typedSummary(v.data as unknown as Float32Array)}` : ''
    return `Tensor ${v.dtype ?? ''}[${v.shape.join(', ')}]${data}`
  }
  if (v instanceof Error) return `${v.name}: ${v.message}`
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]'
    const items = v.slice(0, MAX_ITEMS).map((x) => formatValue(x, next))
    const more = v.length > MAX_ITEMS ? [`… ${v.length - MAX_ITEMS} more`] : []
    const flat = `[${[...items, ...more].join(', ')}]`
    return flat.length <= 80 && !flat.includes('\n') ? flat : `[\n${[...items, ...more].map((s) => next + s).join(',\n')}\n${indent}]`
  }
  if (v instanceof Map) return `Map(${v.size}) ${formatValue(Object.fromEntries(v), indent)}`
  if (v instanceof Set) return `Set(${v.size}) ${formatValue([...v], indent)}`
  const entries = Object.entries(v)
  if (entries.length === 0) return '{}'
  const parts = entries.slice(0, MAX_ITEMS).map(([k, x]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${formatValue(x, next)}`)
  const flat = `{ ${parts.join(', ')} }`
  return flat.length <= 80 && !flat.includes('\n') ? flat : `{\n${parts.map((s) => next + s).join(',\n')}\n${indent}}`
}
