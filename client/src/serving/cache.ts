/**
 * The prediction cache (Clipper §4.2): outputs by model version and input, least recently used
 * first out. A hit never reaches a replica. Keys hash the input's bytes, so the cache holds
 * outputs and 64-character keys, not inputs.
 */
import { sha256HexSync } from '@colony-grid/shared'

export class PredictionCache {
  private readonly entries = new Map<string, Float32Array>()
  hits = 0
  misses = 0

  constructor(private readonly capacity: number) {}

  /** The key of one input row for one version. */
  key(version: string, row: Float32Array): string {
    return `${version}\u0000${sha256HexSync(new Uint8Array(row.buffer, row.byteOffset, row.byteLength))}`
  }

  get(key: string): Float32Array | undefined {
    const out = this.entries.get(key)
    if (!out) { this.misses++; return undefined }
    this.hits++
    // Most recently used last: Map keeps insertion order.
    this.entries.delete(key)
    this.entries.set(key, out)
    return out
  }

  set(key: string, output: Float32Array): void {
    if (this.capacity <= 0) return
    this.entries.delete(key)
    this.entries.set(key, output)
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!)
  }

  /** Drops every entry of `version` (a new version replaced it). */
  invalidate(version: string): void {
    const prefix = `${version}\u0000`
    for (const k of [...this.entries.keys()]) if (k.startsWith(prefix)) this.entries.delete(k)
  }

  get size(): number { return this.entries.size }
  get hitRatio(): number { return this.hits + this.misses ? this.hits / (this.hits + this.misses) : 0 }
}
