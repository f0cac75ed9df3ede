/**
 * The first SchedulingPolicy: locality within fair share.
 *
 * A task goes to a worker with its capabilities and free resources; among those, the one
 * holding the most of its argument bytes, then the least loaded. Each peer may queue a few
 * tasks per executor (its pipeline depth adapts to its tasks' run time: PeerSession), so
 * executors never idle for a round trip (Ray's pipelined leases). When the grid is full, a
 * user under their fair share (the workers' cpu over the users with work) may still be
 * placed, over-committing a Node peer by at most one task per cpu slot: the peer runs it at
 * once in an executor of its own, so one user's endless tasks cannot starve another's.
 */
import type { PeerSession } from '../peer-session.js'
import { TRUSTED_WORKER, type FairShare, type NotPlaced, type PlacementRequest, type SchedulingPolicy } from './scheduling.js'

/** How many tasks per unit of `cpu` a peer may hold (running plus queued there). */
export type DepthOf = (peer: PeerSession) => number

const NO_PIPELINE: DepthOf = () => 1

export class LocalityPolicy implements SchedulingPolicy {
  private readonly depth: DepthOf
  /** A user under their fair share of a full grid gets one more task per cpu slot (a tab computes no more than it offers). */
  private readonly overDepth: DepthOf
  /** The most tasks per cpu any peer may ever hold, for what could ever run. */
  private readonly maxDepth: number
  private workers: readonly PeerSession[] = []
  private share!: FairShare
  private full = false
  /** Cpu per user with work, this pass (NaN: not worked out yet; 0: nobody is under it). */
  private perUser = NaN

  constructor(opts: { pipelineDepth?: number; pipelineTargetMs: number; maxPipelineDepth: number }) {
    const fixed = opts.pipelineDepth
    const depth: DepthOf = fixed ? () => fixed : (peer) => peer.pipelineDepth(opts.pipelineTargetMs, opts.maxPipelineDepth)
    this.depth = depth
    this.overDepth = (peer) => depth(peer) + (peer.kind === 'browser' ? 0 : 1)
    this.maxDepth = (fixed ?? Math.max(2, opts.maxPipelineDepth)) + 1
  }

  beginPass(workers: readonly PeerSession[], share: FairShare): void {
    this.workers = workers
    this.share = share
    this.full = false
    this.perUser = NaN
  }

  place(req: PlacementRequest): PeerSession | NotPlaced {
    if (!this.full && allFull(this.workers, this.depth)) {
      this.full = true
      // A lone user is never under their share of a full grid; nor is anyone once even over-commits are spent.
      if (this.share.activeUsers() < 2 || allFull(this.workers, this.overDepth)) return 'stop'
    }
    if (this.full && (req.actor || !this.underShare(req.user))) return 'defer'
    // An actor keeps its resources for life, so it is placed only where they are free now (no pipelining).
    let peer = this.full ? undefined : pickPeer(req, this.workers, req.actor ? NO_PIPELINE : this.depth)
    if (!peer && !req.actor && this.underShare(req.user)) peer = pickPeer(req, this.workers, this.overDepth)
    return peer ?? (this.full ? 'defer' : 'busy')
  }

  /** Is a user under their fair share: the cpu of the workers that take tasks now, over the users with work? */
  private underShare(user: string): boolean {
    if (Number.isNaN(this.perUser)) {
      const users = this.share.activeUsers()
      let capacity = 0
      for (const s of this.workers) capacity += s.resources.cpu ?? 0
      this.perUser = users < 2 ? 0 : capacity / users
    }
    return this.perUser > 0 && this.share.inUse(user) < this.perUser
  }

  infeasible(req: PlacementRequest, candidates: readonly PeerSession[]): string[] | undefined {
    for (const p of candidates) if (this.couldEverRun(req, p)) return undefined
    const needs: string[] = []
    if (req.trusted && !candidates.some((p) => p.trusted)) needs.push(TRUSTED_WORKER)
    for (const c of req.capabilities) if (!candidates.some((p) => p.capabilities.has(c))) needs.push(`capability ${c}`)
    if (candidates.length === 0) return needs.length > 0 ? needs : ['a worker']
    const noCpu = !candidates.some((p) => (p.resources.cpu ?? 0) > 0)
    if (noCpu) needs.push('a worker with cpu')
    for (const k in req.resources) {
      const n = req.resources[k]
      if (n > 0 && !(noCpu && k === 'cpu') && !candidates.some((p) => this.total(req, p, k) >= n)) needs.push(`${k} ${n}`)
    }
    // Each need is met somewhere, but never all on one peer.
    if (needs.length === 0) {
      const all = [...(req.trusted ? [TRUSTED_WORKER] : []), ...req.capabilities.map((c) => `capability ${c}`), ...Object.entries(req.resources).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`)]
      needs.push(`${all.join(', ')} on one worker`)
    }
    return needs
  }

  /** Could the peer run the task once it has room (its totals, not what is free now)? */
  private couldEverRun(req: PlacementRequest, p: PeerSession): boolean {
    if (req.trusted && !p.trusted) return false
    for (const cap of req.capabilities) if (!p.capabilities.has(cap)) return false
    if ((p.resources.cpu ?? 0) <= 0) return false
    for (const k in req.resources) if (req.resources[k] > 0 && this.total(req, p, k) < req.resources[k]) return false
    return true
  }

  private total(req: PlacementRequest, p: PeerSession, k: string): number {
    return (p.resources[k] ?? 0) * (k === 'cpu' ? (req.actor ? 1 : this.maxDepth) : 1)
  }
}

/**
 * Picks a peer for a task: it must have the capabilities and the free resources;
 * among those, the one holding the most argument bytes wins, then the least loaded.
 * `peers` may all take work now (PeerManager.schedulable).
 */
export function pickPeer(p: PlacementRequest, peers: readonly PeerSession[], depth: DepthOf): PeerSession | undefined {
  let best: PeerSession | undefined
  let bestHeld = -1
  let bestLoad = Infinity
  for (const peer of peers) {
    if (p.avoid?.has(peer.id) || !fits(p, peer, depth(peer))) continue
    const held = p.heldBytes?.get(peer.id) ?? 0
    const load = peer.load()
    if (held > bestHeld || (held === bestHeld && load < bestLoad)) { best = peer; bestHeld = held; bestLoad = load }
  }
  return best
}

function fits(p: PlacementRequest, peer: PeerSession, depth: number): boolean {
  if (p.trusted && !peer.trusted) return false
  for (const cap of p.capabilities) if (!peer.capabilities.has(cap)) return false
  if ((peer.resources.cpu ?? 0) <= 0) return false
  for (const k in p.resources) {
    const need = p.resources[k]
    if (need <= 0) continue
    const total = (peer.resources[k] ?? 0) * (k === 'cpu' ? depth : 1)
    if ((peer.used[k] ?? 0) + need > total) return false
  }
  return true
}

/** True when no worker has any cpu left: the pass can stop scanning its queue. */
export function allFull(peers: readonly PeerSession[], depth: DepthOf): boolean {
  for (const peer of peers) if ((peer.used.cpu ?? 0) < (peer.resources.cpu ?? 0) * depth(peer)) return false
  return true
}
