/** A latency histogram as Prometheus exposes one: counts by upper bound (cumulative when written), their sum and count. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]

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

  /** `name_bucket{labels,le="…"}` lines (cumulative, +Inf last), then `name_sum` and `name_count`. */
  lines(name: string, labels: string): string[] {
    let running = 0
    const out = this.bounds.map((b, i) => { running += this.counts[i]; return `${name}_bucket{${labels},le="${b}"} ${running}` })
    out.push(`${name}_bucket{${labels},le="+Inf"} ${this.count}`, `${name}_sum{${labels}} ${this.sum.toFixed(3)}`, `${name}_count{${labels}} ${this.count}`)
    return out
  }
}
