/**
 * How many queued queries a replica takes at once. Clipper's AIMD (§4.3): while a batch comes
 * back within the latency objective, the next may be one query larger (only a full batch says
 * anything about a larger one); a batch that misses it cuts the size by a tenth. `fixed` and
 * `off` (batches of one) are the baselines it is measured against.
 */
export interface BatchSizer {
  /** The most queries the next batch may take. */
  readonly size: number
  /** A batch of `batch` queries took `ms` on its replica, from dispatch to result. */
  observe(batch: number, ms: number): void
}

/** `sloMs` may change while it runs (an operator tightening the objective): a function is read at each batch. */
export interface AimdOptions { sloMs: number | (() => number); start?: number; step?: number; backoff?: number; max?: number }

export class AimdBatchSizer implements BatchSizer {
  private current: number
  constructor(private readonly opts: AimdOptions) { this.current = Math.max(1, opts.start ?? 1) }

  get size(): number { return Math.floor(this.current) }

  observe(batch: number, ms: number): void {
    const slo = typeof this.opts.sloMs === 'function' ? this.opts.sloMs() : this.opts.sloMs
    if (ms > slo) this.current = Math.max(1, this.current * (1 - (this.opts.backoff ?? 0.1)))
    else if (batch >= this.size) this.current = Math.min(this.opts.max ?? 1024, this.current + (this.opts.step ?? 1))
  }
}

export class FixedBatchSizer implements BatchSizer {
  constructor(readonly size: number) {}
  observe(): void { /* fixed */ }
}
