/**
 * HTTP routes a library adds to the coordinator (the serving library's /serve and
 * /api/deployments), as fetch-API handlers: the coordinator routes the prefixes to them and
 * says who the caller is; it knows nothing else of them.
 */
export interface Ingress {
  /** Path prefixes it answers, e.g. '/serve' (the prefix itself and everything under it). */
  readonly prefixes: readonly string[]
  fetch(req: Request, caller: { role?: 'driver' | 'worker'; operator?: boolean }): Promise<Response>
  /** Its metric families now, for /metrics (called on each scrape; metrics.ts writes them with their HELP and TYPE). */
  metrics?(): MetricFamily[]
  /** Called when the coordinator closes, before it stops serving. */
  close?(): Promise<void>
}

export type MetricLabels = Readonly<Record<string, string>>

/**
 * A metric family as plain numbers, so that a library needs no Prometheus client of its own.
 * Names follow Prometheus's conventions: base units (`_seconds`, `_bytes`), `_total` on counters.
 * A family's name, type and label names must not change between scrapes.
 */
export type MetricFamily =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: { labels: MetricLabels; value: number }[] }
  | {
    name: string; help: string; type: 'histogram'
    /** Upper bounds, ascending, without +Inf. */
    buckets: readonly number[]
    /** `counts`: observations per bucket, not cumulative, one more than `buckets` (the last is above them all). */
    series: { labels: MetricLabels; counts: readonly number[]; sum: number }[]
  }
