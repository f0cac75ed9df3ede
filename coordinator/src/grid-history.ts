/**
 * The grid over time, for the operator's dashboard: a page that opens has no past of its own,
 * so the coordinator keeps one. Every `intervalMs` it reads counters and gauges (nothing that
 * walks tasks or objects) into a fixed-size ring, served at GET /api/history?since=<ms>.
 */
import type { Context, Hono } from 'hono'
import { ProtocolError, type GridHistory } from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import type { TokenGrant } from './tokens.js'

/** What one sample reads: each is a counter or a gauge the control plane keeps anyway. */
export interface GridGauges { tasksFinished: number; queued: number; running: number; peers: number }

const COLUMNS = ['at', 'tasksPerSecond', 'queued', 'running', 'peers'] as const

/** The last `capacity` samples, oldest overwritten first. Bound: `capacity` × 5 numbers. */
export class GridHistoryRing {
  private readonly cols: Record<(typeof COLUMNS)[number], Float64Array>
  private next = 0
  private count = 0
  /** The sample before, for the rate of finished tasks (a fresh control plane restarts its counters). */
  private last?: { at: number; tasksFinished: number }

  constructor(readonly capacity: number, readonly intervalMs: number) {
    if (!(capacity >= 1)) throw new RangeError(`a history keeps at least 1 sample, not ${capacity}`)
    this.cols = Object.fromEntries(COLUMNS.map((c) => [c, new Float64Array(capacity)])) as GridHistoryRing['cols']
  }

  get size(): number { return this.count }

  /** Adds a sample; `g` undefined (a standby, no control plane yet) adds none and forgets the rate's base. */
  sample(g: GridGauges | undefined, now = Date.now()): void {
    if (!g) { this.last = undefined; return }
    const before = this.last
    const finished = before && g.tasksFinished >= before.tasksFinished && now > before.at ? g.tasksFinished - before.tasksFinished : 0
    const rate = before && now > before.at ? (finished * 1000) / (now - before.at) : 0
    this.last = { at: now, tasksFinished: g.tasksFinished }
    const i = this.next
    this.cols.at[i] = now
    this.cols.tasksPerSecond[i] = Math.round(rate * 100) / 100
    this.cols.queued[i] = g.queued
    this.cols.running[i] = g.running
    this.cols.peers[i] = g.peers
    this.next = (i + 1) % this.capacity
    this.count = Math.min(this.count + 1, this.capacity)
  }

  /** The samples taken after `since` (all of them without it), oldest first. */
  since(since = -Infinity): GridHistory {
    const out: GridHistory = { intervalMs: this.intervalMs, capacity: this.capacity, at: [], tasksPerSecond: [], queued: [], running: [], peers: [] }
    const first = (this.next - this.count + this.capacity) % this.capacity
    for (let k = 0; k < this.count; k++) {
      const i = (first + k) % this.capacity
      if (this.cols.at[i] <= since) continue
      for (const c of COLUMNS) out[c].push(this.cols[c][i])
    }
    return out
  }
}

/** The gauges of a control plane, read in O(peers) at most. */
export function gaugesOf(control: ControlPlane): GridGauges {
  return { tasksFinished: control.counters.tasksFinished, queued: control.queuedTasks(), running: control.runningTasks(), peers: control.sessions.size }
}

export interface HistoryApiOptions {
  /** The control plane as it is now: undefined until this coordinator leads (a standby takes over later). */
  control: () => ControlPlane | undefined
  /** The operator's grant, else an AuthError (server.ts). */
  needOperator: (c: Context) => TokenGrant
  /** Default 2000 ms. */
  intervalMs?: number
  /** Default an hour's worth of samples. */
  capacity?: number
}

/** Samples the grid on an unref'd timer and serves GET /api/history; `stop()` ends the sampling. */
export function mountHistoryApi(app: Hono, o: HistoryApiOptions): { ring: GridHistoryRing; stop(): void } {
  const intervalMs = o.intervalMs ?? 2000
  const ring = new GridHistoryRing(o.capacity ?? Math.ceil(3_600_000 / intervalMs), intervalMs)
  const take = () => { const control = o.control(); ring.sample(control ? gaugesOf(control) : undefined) }
  take()
  const timer = setInterval(take, intervalMs)
  timer.unref()
  app.get('/api/history', (c) => {
    o.needOperator(c)
    const raw = c.req.query('since')
    const since = raw === undefined || raw === '' ? undefined : Number(raw)
    if (since !== undefined && !Number.isFinite(since)) {
      throw new ProtocolError(`since=${String(raw).slice(0, 40)} is not a time: give ms since the epoch (the last "at" you have), or leave it out for the whole history`)
    }
    return c.json(ring.since(since))
  })
  return { ring, stop: () => clearInterval(timer) }
}
