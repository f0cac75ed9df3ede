/**
 * One actor in its executor: the instance, and the turns its calls take. At most `limit` calls
 * run at once (its maxConcurrency; 1 by default, when each call waits for the one before it to
 * end); the rest wait, and start in the order they arrived.
 */
export class ActorSlot {
  private running = 0
  private readonly waiting: (() => void)[] = []

  constructor(readonly instance: Record<string, unknown>, readonly limit: number) {}

  /**
   * Resolves when the call may start. Always a promise, even with a turn free: a call never starts
   * inside the message that delivers it, so a cancel in the same batch still finds it waiting.
   * Every `enter` is paired with one `leave`, once the call has ended.
   */
  enter(): Promise<void> {
    if (this.running < this.limit && this.waiting.length === 0) { this.running++; return Promise.resolve() }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /** A call ended: its turn passes to the longest waiting call, if any. */
  leave(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.running--
  }
}
