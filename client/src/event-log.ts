/**
 * The events of a run (training steps, a search's trials), kept for every reader: each `for await`
 * gets them all from the first, however many loops read at once (an IDE panel and the job's own).
 */
export class EventLog<T> {
  private readonly items: T[] = []
  private readonly waiters = new Set<() => void>()
  private ended = false

  get length(): number { return this.items.length }

  push(e: T): void { this.items.push(e); this.wake() }

  /** No more events: readers finish once they have read what there is (and `done` settled). */
  end(): void { this.ended = true; this.wake() }

  private wake(): void {
    const ws = [...this.waiters]
    this.waiters.clear()
    for (const w of ws) w()
  }

  /** `done`: what a reader awaits at the end (the run's promise: a failed run throws out of the loop). */
  async *read(done: Promise<unknown>): AsyncGenerator<T> {
    let i = 0
    for (;;) {
      while (i < this.items.length) yield this.items[i++]
      if (this.ended) { await done; if (i >= this.items.length) return; continue }
      await new Promise<void>((r) => this.waiters.add(r))
    }
  }
}
