import type { MetricLabels } from '@colony-grid/coordinator'

/** A latency histogram as Prometheus exposes one (in ms here, in seconds there): counts by upper bound, their sum and count. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]
/** The same bounds in seconds, as /metrics gives them. */
export const LATENCY_BUCKETS_S = LATENCY_BUCKETS_MS.map((ms) => ms / 1000)

export class Histogram {
  private readonly counts: number[]
  sum = 0
  count = 0

  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS_MS) { this.counts = new Array(bounds.length + 1).fill(0) }

  observe(v: number): void {
    let i = 0
    while (i < this.bounds.length && v > this.bounds[i]) i++
    this.counts[i]++
    this.sum += v
    this.count++
  }

  /** As a series of a histogram family for /metrics (coordinator/src/ingress.ts), in seconds; its buckets are `bounds` / 1000. */
  series(labels: MetricLabels): { labels: MetricLabels; counts: readonly number[]; sum: number } {
    return { labels, counts: [...this.counts], sum: this.sum / 1000 }
  }
}
