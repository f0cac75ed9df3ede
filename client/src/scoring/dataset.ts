/** Turns a dataset (refs, shards, one tensor, or rows) into shard refs in the grid. */
import { ObjectRef } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import type { Dataset, Shard } from './types.js'

function isShard(v: unknown): v is Shard {
  return !!v && typeof v === 'object' && ArrayBuffer.isView((v as Shard).data) && Array.isArray((v as Shard).shape)
}

/** Splits one tensor into shards of `rows` rows (views, so nothing is copied before the put). */
export function splitRows(t: Shard, rows: number): Shard[] {
  const [n, ...rest] = t.shape
  const rowSize = rest.reduce((a, b) => a * b, 1)
  if (t.data.length !== n * rowSize) throw new RangeError(`dataset shape [${t.shape.join(', ')}] does not match its ${t.data.length} values`)
  const out: Shard[] = []
  for (let r = 0; r < n; r += rows) {
    const k = Math.min(rows, n - r)
    out.push({ data: t.data.subarray(r * rowSize, (r + k) * rowSize), shape: [k, ...rest] })
  }
  return out
}

export interface ShardRefs { refs: ObjectRef<Shard>[]; /** Rows per shard, where known before scoring. */ rows?: number[]; ours: boolean }

export function shardRefs(grid: Grid, dataset: Dataset, batchSize: number): ShardRefs {
  if (isShard(dataset)) return put(grid, splitRows(dataset, batchSize))
  if (!Array.isArray(dataset)) throw new TypeError('dataset must be shard refs, shards, one { data, shape } tensor, or an array of rows')
  if (dataset.length === 0) return { refs: [], rows: [], ours: false }
  if (dataset.every((d) => d instanceof ObjectRef)) return { refs: dataset as ObjectRef<Shard>[], ours: false }
  if (dataset.every(isShard)) return put(grid, dataset as Shard[])
  if (dataset.every((d) => Array.isArray(d))) {
    const rows = dataset as readonly (readonly number[])[]
    const width = rows[0].length
    if (rows.some((r) => r.length !== width)) throw new RangeError('every row of the dataset must have the same length')
    const data = new Float32Array(rows.length * width)
    rows.forEach((r, i) => data.set(r, i * width))
    return put(grid, splitRows({ data, shape: [rows.length, width] }, batchSize))
  }
  throw new TypeError('dataset must be all shard refs, all shards, or all rows')
}

function put(grid: Grid, shards: Shard[]): ShardRefs {
  return { refs: shards.map((s) => grid.put(s)), rows: shards.map((s) => s.shape[0]), ours: true }
}
