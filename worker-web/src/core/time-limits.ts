/**
 * The time limits of the tasks in an executor pool. A timer per task costs the hot path (the
 * coordinator gives every task its job's limit, 15 minutes by default), so limits of more than
 * SWEEP_ABOVE_MS are checked by one sweep a second instead: a second late at most.
 */

/** Time limits longer than this are checked by a sweep each second, not a timer each. */
const SWEEP_ABOVE_MS = 60_000

export class TaskTimeLimits {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()
  private readonly deadlines = new Map<string, { at: number; ms: number }>()
  private sweeper?: ReturnType<typeof setInterval>

  /** `expire`: the task ran past its `ms`; its limit is already gone when this is called. */
  constructor(private readonly expire: (taskId: string, ms: number) => void) {}

  has(taskId: string): boolean { return this.timers.has(taskId) || this.deadlines.has(taskId) }

  set(taskId: string, ms: number): void {
    if (ms <= SWEEP_ABOVE_MS) {
      this.timers.set(taskId, setTimeout(() => { this.timers.delete(taskId); this.expire(taskId, ms) }, ms))
      return
    }
    this.deadlines.set(taskId, { at: Date.now() + ms, ms })
    if (this.sweeper) return
    this.sweeper = setInterval(() => {
      const now = Date.now()
      for (const [id, d] of this.deadlines) if (d.at <= now) { this.deadlines.delete(id); this.expire(id, d.ms) }
      if (this.deadlines.size === 0) { clearInterval(this.sweeper); this.sweeper = undefined }
    }, 1000)
    ;(this.sweeper as { unref?: () => void }).unref?.()
  }

  clear(taskId: string): void {
    this.deadlines.delete(taskId)
    const t = this.timers.get(taskId)
    if (t) { clearTimeout(t); this.timers.delete(taskId) }
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    clearInterval(this.sweeper)
    this.sweeper = undefined
    this.deadlines.clear()
  }
}
