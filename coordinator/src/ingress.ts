/**
 * HTTP routes a library adds to the coordinator (the serving library's /serve and
 * /api/deployments), as fetch-API handlers: the coordinator routes the prefixes to them and
 * says who the caller is; it knows nothing else of them.
 */
export interface Ingress {
  /** Path prefixes it answers, e.g. '/serve' (the prefix itself and everything under it). */
  readonly prefixes: readonly string[]
  fetch(req: Request, caller: { role?: 'driver' | 'worker'; operator?: boolean }): Promise<Response>
  /** Lines it adds to /metrics (Prometheus text). */
  metrics?(): string[]
  /** Called when the coordinator closes, before it stops serving. */
  close?(): Promise<void>
}
