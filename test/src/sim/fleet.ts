/**
 * Many simulated peers in one process (sim-peer.ts), flushed together once per event-loop turn,
 * with what happens to them reported in batches, also once per turn: the same object runs in a
 * child process of its own (fleet-process.ts, reporting over IPC) or in the caller's process.
 */
import { SimPeer, type SimPeerEnd, type SimPeerHooks, type SimPeerSpec } from './sim-peer.js'

/** How often the count of tasks answered is reported. */
const TASKS_REPORT_MS = 100

export interface FleetOptions {
  url: string
  token: string
  /** The peers of this fleet, each with its index among all peers (for the ramp). */
  peers: (SimPeerSpec & { index: number })[]
  /** All peers of every fleet: the ramp spreads their connects over `rampMs` by index. */
  totalPeers: number
  /** 0: every peer connects at once (a join storm). */
  rampMs: number
  taskMs: number
}

/** What a fleet reports, in batches. */
export type FleetReport =
  | { ev: 'connecting'; at: number }
  | { ev: 'welcomed'; ids: string[]; at: number }
  | { ev: 'refused'; reason: string }
  | { ev: 'ended'; ends: (SimPeerEnd & { peerId: string })[] }
  | { ev: 'tasks'; done: number }

export class Fleet {
  private readonly peers: SimPeer[]
  private readonly dirtyPeers: SimPeer[] = []
  private pending: FleetReport[] = []
  private welcomedIds: string[] = []
  private ends: (SimPeerEnd & { peerId: string })[] = []
  private tasksDone = 0
  private tasksTimer?: NodeJS.Timeout
  private turnQueued = false
  private readonly rampTimers: NodeJS.Timeout[] = []

  constructor(private readonly opts: FleetOptions, private readonly report: (r: FleetReport) => void) {
    const hooks: SimPeerHooks = {
      dirty: (p) => { this.dirtyPeers.push(p); this.queueTurn() },
      welcomed: (p) => { this.welcomedIds.push(p.peerId); this.queueTurn() },
      refused: (_p, reason) => { this.pending.push({ ev: 'refused', reason }); this.queueTurn() },
      ended: (p, end) => { this.ends.push({ ...end, peerId: p.peerId }); this.queueTurn() },
      taskDone: () => { if (this.tasksDone++ === 0) this.tasksTimer ??= setTimeout(() => this.reportTasks(), TASKS_REPORT_MS) },
    }
    this.peers = opts.peers.map((spec) => new SimPeer(spec, { url: opts.url, token: opts.token, taskMs: opts.taskMs }, hooks))
  }

  start(): void {
    this.report({ ev: 'connecting', at: Date.now() })
    const { rampMs, totalPeers } = this.opts
    this.peers.forEach((p, i) => {
      const delay = rampMs > 0 ? (this.opts.peers[i].index * rampMs) / totalPeers : 0
      if (delay <= 0) p.connect()
      else this.rampTimers.push(setTimeout(() => p.connect(), delay))
    })
  }

  /** Stops `count` welcomed peers' pings (they stay connected); returns their ids. */
  silence(count: number): string[] {
    const chosen = this.peers.filter((p) => p.peerId && !p.silenced).slice(0, count)
    for (const p of chosen) p.silence()
    return chosen.map((p) => p.peerId)
  }

  /** Every peer leaves (bye, close); resolves when every socket has closed. */
  async stop(): Promise<void> {
    for (const t of this.rampTimers) clearTimeout(t)
    await Promise.all(this.peers.map((p) => p.leave()))
    clearTimeout(this.tasksTimer)
    this.reportTasks()
    this.endTurn()
  }

  private queueTurn(): void {
    if (this.turnQueued) return
    this.turnQueued = true
    setImmediate(() => this.endTurn())
  }

  /** Once per turn: every peer's frame goes out, then what happened is reported. */
  private endTurn(): void {
    this.turnQueued = false
    for (const p of this.dirtyPeers.splice(0)) p.flush()
    if (this.welcomedIds.length > 0) { this.pending.push({ ev: 'welcomed', ids: this.welcomedIds, at: Date.now() }); this.welcomedIds = [] }
    if (this.ends.length > 0) { this.pending.push({ ev: 'ended', ends: this.ends }); this.ends = [] }
    for (const r of this.pending.splice(0)) this.report(r)
  }

  /** Tasks answered are counted and reported every TASKS_REPORT_MS, not each turn: a report costs its reader (the driver's process) as much as a task. */
  private reportTasks(): void {
    this.tasksTimer = undefined
    if (this.tasksDone > 0) this.report({ ev: 'tasks', done: this.tasksDone })
    this.tasksDone = 0
  }
}
