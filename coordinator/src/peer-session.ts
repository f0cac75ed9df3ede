import { randomBytes } from 'node:crypto'
import { encodeFrame, type CoordinatorToPeer, type PeerInfo, type PeerKind, type PeerRole } from '@colony-grid/shared'

/** What the coordinator needs of a socket; @hono/node-ws's context satisfies it. */
export interface PeerSocket {
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
}

/**
 * One connected peer: what it offers, its resource ledger, the jobs it may read, and its
 * outbox. Messages are queued and sent as one frame when the coordinator flushes at the end
 * of a turn.
 */
export class PeerSession {
  kind: PeerKind = 'node'
  /** Takes no new tasks (a hidden tab). */
  paused = false
  /** The id of the token it joined with (for limits, and to drop it when the token is revoked). */
  tokenId = ''
  /** It joined with a trusted join token: it may run what no quorum can check (a job's main). */
  trusted = false
  /** It proved an id it had before (hello.peerId with its peerSecret): what it reports holding or running may be its. */
  resumed = false
  /** Its token and address (identity.ts), which its reputation also counts against. */
  origin = ''
  /** Where it connects from. */
  address?: string
  /** It can open WebRTC data channels. */
  p2p = false
  /** This session's secret: grants to read objects held here are signed with it. */
  readonly grantKey = new Uint8Array(randomBytes(32))
  role: PeerRole = 'worker'
  capabilities = new Set<string>()
  resources: Record<string, number> = {}
  used: Record<string, number> = {}
  /**
   * Jobs with work on this peer (tasks and hosted actors), counted: the jobs whose objects this
   * peer may read. What it runs, hosts and holds is kept by the managers that own those tables
   * (control/tasks.ts, actors.ts, objects.ts); its standing by control/peers.ts.
   */
  readonly jobs = new Map<string, number>()
  /**
   * Functions already sent on this connection, by job, so a `run` carries each definition once.
   * Bound: a job's go when it finishes (control/peers.ts), so a peer connected for months holds
   * only those of the jobs running.
   */
  readonly knownFns = new Map<string, Set<string>>()
  /** A driver's job. */
  jobId?: string
  tasksDone = 0
  connectedAt = Date.now()
  lastSeen = Date.now()
  /** Durable messages committed from this connection, acknowledged back after each commit. */
  durableSeen = 0
  /** Of those, how many the store has committed; only these may be acknowledged. */
  durableCommitted = 0
  durableAcked = 0
  private outbox: CoordinatorToPeer[] = []
  closed = false

  constructor(readonly id: string, readonly socket: PeerSocket) {}

  send(msg: CoordinatorToPeer): void { if (!this.closed) this.outbox.push(msg) }

  /** Sends everything queued as one frame; returns the bytes sent. */
  flush(): number {
    if (this.outbox.length === 0 || this.closed) return 0
    const frame = encodeFrame(this.outbox)
    this.outbox = []
    try { this.socket.send(frame) } catch { /* the close handler cleans up */ }
    return frame.byteLength
  }

  addJob(job: string): void { this.jobs.set(job, (this.jobs.get(job) ?? 0) + 1) }
  dropJob(job: string): void {
    const n = (this.jobs.get(job) ?? 0) - 1
    if (n <= 0) this.jobs.delete(job); else this.jobs.set(job, n)
  }
  canRead(job: string): boolean { return this.role === 'driver' ? this.jobId === job : this.jobs.has(job) }

  take(res: Record<string, number>): void { for (const k in res) this.used[k] = (this.used[k] ?? 0) + res[k] }
  release(res: Record<string, number>): void { for (const k in res) this.used[k] = (this.used[k] ?? 0) - res[k] }

  /** Average run time of this peer's recent tasks (ms); undefined until one finishes. */
  runtimeMs?: number
  observeRuntime(ms: number): void { this.runtimeMs = this.runtimeMs === undefined ? ms : this.runtimeMs * 0.8 + ms * 0.2 }

  /**
   * Tasks each executor may have queued: enough for about `targetMs` of work, so
   * executors never idle for a round trip on short tasks, and long tasks are not
   * hoarded by one peer while others are free.
   */
  pipelineDepth(targetMs: number, max: number): number {
    if (this.runtimeMs === undefined) return 2
    return Math.max(2, Math.min(max, Math.ceil(targetMs / Math.max(this.runtimeMs, 0.01))))
  }

  load(): number { const cpu = this.resources.cpu ?? 0; return cpu > 0 ? (this.used.cpu ?? 0) / cpu : 0 }

  /** What /api/peers shows; `of` adds what the managers keep of it (control-plane.ts peerInfos). */
  info(of: { objects: number; bytesHeld: number; running: number; reputation: number; quarantined: boolean }): PeerInfo {
    return {
      objects: of.objects, bytesHeld: of.bytesHeld,
      id: this.id, kind: this.kind, role: this.role, capabilities: [...this.capabilities], resources: this.resources,
      address: this.address, load: Math.round(this.load() * 100) / 100, running: of.running, paused: this.paused, reputation: Math.round(of.reputation * 100) / 100, quarantined: of.quarantined, tasksDone: this.tasksDone, connectedAt: this.connectedAt,
      trusted: this.trusted,
    }
  }
}
