/**
 * Ready tasks shared fairly between users (a user is the token that owns the job).
 * Each user has a FIFO lane; a scheduling pass takes tasks round-robin across lanes,
 * one at a time, so one user's backlog never holds back another's later work. The
 * next pass starts after the last user served, so fairness also holds across passes.
 *
 * It also counts the cpu each user holds on peers (running tasks that are not blocked,
 * actors' resources), so the scheduler can tell a user under their fair share
 * (capacity / users with work) from one over it. Every operation is O(1) per task; a
 * pass costs O(users) more, never a scan of every user's queue.
 */

interface Lane {
  user: string
  ids: string[]
  /** Ids before it were taken this pass. */
  head: number
  /** Taken this pass and not placed: they go back to the front at the end of the pass, in order. */
  kept: string[]
}

export class FairQueue {
  /** Bound: one per user with tasks queued; an emptied lane goes. */
  private readonly lanes = new Map<string, Lane>()
  /** This pass's lanes, in round-robin order. */
  private order: Lane[] = []
  private pos = 0
  private current?: Lane
  /** The last task taken was placed (not kept or put back). */
  private placedCurrent = false
  private lastServed?: string
  /** Bound: users with recent use; it decays, and an entry goes once it is near 0. */
  private readonly usage = new Map<string, number>()
  private queued = 0

  /** Tasks queued, counting ones that were cancelled meanwhile (they are dropped when taken). */
  get size(): number { return this.queued }

  push(user: string, id: string): void {
    let lane = this.lanes.get(user)
    if (!lane) { lane = { user, ids: [], head: 0, kept: [] }; this.lanes.set(user, lane) }
    lane.ids.push(id)
    this.queued++
  }

  /** Starts a pass: it begins with the user after the one served last. */
  beginPass(): void {
    const order: Lane[] = []
    for (const lane of this.lanes.values()) if (lane.head < lane.ids.length) order.push(lane)
    const last = order.findIndex((l) => l.user === this.lastServed)
    this.order = last < 0 ? order : order.slice(last + 1).concat(order.slice(0, last + 1))
    this.pos = 0
    this.current = undefined
  }

  /** The next task of this pass, round-robin across users; undefined when every lane was seen out. */
  take(): string | undefined {
    this.settle()
    while (this.order.length > 0) {
      if (this.pos >= this.order.length) this.pos = 0
      const lane = this.order[this.pos]
      if (lane.head >= lane.ids.length) { this.order.splice(this.pos, 1); continue }
      this.pos++
      this.current = lane
      this.placedCurrent = true
      this.queued--
      return lane.ids[lane.head++]
    }
    this.current = undefined
    return undefined
  }

  /** The user of the task last taken. */
  get user(): string { return this.current!.user }

  /** The task last taken could not be placed: it keeps its place, and the pass goes on to its lane's next task in turn. */
  keep(): void {
    const lane = this.current!
    lane.kept.push(lane.ids[lane.head - 1])
    this.placedCurrent = false
    this.queued++
  }

  /** The task last taken goes back to the head of its lane, and the lane sits out the rest of this pass. */
  deferLane(): void {
    const lane = this.current!
    lane.head--
    this.placedCurrent = false
    this.queued++
    const i = this.order.indexOf(lane, Math.max(0, this.pos - 1))
    if (i >= 0) { this.order.splice(i, 1); if (i < this.pos) this.pos-- }
  }

  /** Ends a pass: kept tasks go back to the front of their lanes, and empty lanes go. */
  endPass(): void {
    this.settle()
    this.current = undefined
    this.order = []
    for (const [user, lane] of this.lanes) {
      if (lane.kept.length > 0) { lane.ids = lane.kept.concat(lane.ids.slice(lane.head)); lane.head = 0; lane.kept = [] }
      else if (lane.head >= lane.ids.length) { this.lanes.delete(user); continue }
      else if (lane.head > 4096 && lane.head * 2 > lane.ids.length) { lane.ids = lane.ids.slice(lane.head); lane.head = 0 }
    }
  }

  private settle(): void {
    if (this.current && this.placedCurrent) this.lastServed = this.current.user
    this.placedCurrent = false
  }

  /** A user's cpu in use grew (a task placed, an actor hosted) or shrank (it ended, blocked, or its peer left). */
  use(user: string, cpu: number): void {
    const n = (this.usage.get(user) ?? 0) + cpu
    if (n > 1e-9) this.usage.set(user, n); else this.usage.delete(user)
  }

  inUse(user: string): number { return this.usage.get(user) ?? 0 }

  /** Users with work: tasks queued or cpu in use. */
  activeUsers(): number {
    let n = this.usage.size
    for (const user of this.lanes.keys()) if (!this.usage.has(user)) n++
    return n
  }
}
