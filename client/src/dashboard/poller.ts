/**
 * Runs a refresh every `ms`: never two at once (a slow answer is not stacked up behind), not while
 * the tab is hidden (nobody looks; it catches up when shown), and it reports how each one went.
 */
export class Poller {
  private timer?: ReturnType<typeof setTimeout>
  private running = false
  /** Asked for while one was under way: one more as soon as it ends (what it read may predate the change). */
  private again = false
  private stopped = true

  constructor(private readonly ms: number, private readonly work: () => Promise<void>, private readonly done: (error?: unknown) => void) {
    document.addEventListener('visibilitychange', () => { if (!document.hidden && !this.stopped) void this.now() })
  }

  start(): void { this.stopped = false; void this.now() }
  stop(): void { this.stopped = true; clearTimeout(this.timer) }

  /** Refreshes at once (after an action the operator took), then on the beat again. */
  async now(): Promise<void> {
    if (this.stopped) return
    if (this.running) { this.again = true; return }
    clearTimeout(this.timer)
    this.running = true
    try { await this.work(); this.done() } catch (e) { this.done(e) } finally { this.running = false }
    if (this.again) { this.again = false; return this.now() }
    if (!this.stopped) this.timer = setTimeout(() => { if (!document.hidden) void this.now() }, this.ms)
  }
}
