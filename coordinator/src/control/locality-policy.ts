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
  /** Picks this pass, and its workers by load: made once a pass has picked SCANS_BEFORE_INDEX times. */
  private picks = 0
  private index?: LoadIndex
  private placedLast?: PeerSession
  /**
   * What no worker could take this pass, by depth: peers only fill up during a pass, so a queue of
   * tasks that fit nowhere (a capability whose peers are busy) costs one search, not one per task.
   */
  private readonly nothingFits = new Map<DepthOf, Set<string>>()
  /** Workers before these indexes are full this pass (at their pipeline depth; with over-commits). */
  private fullUpTo = 0
  private overFullUpTo = 0

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
    this.picks = 0
    this.index = undefined
    this.placedLast = undefined
    this.nothingFits.clear()
    this.fullUpTo = 0
    this.overFullUpTo = 0
  }

  place(req: PlacementRequest): PeerSession | NotPlaced {
    // The peer placed last took that task's resources since: its place in the index moves.
    if (this.placedLast) { this.index?.moved(this.placedLast); this.placedLast = undefined }
    if (!this.full && this.allFull()) {
      this.full = true
      // A lone user is never under their share of a full grid; nor is anyone once even over-commits are spent.
      if (this.share.activeUsers() < 2 || this.allOverFull()) return 'stop'
    }
    if (this.full && (req.actor || !this.underShare(req.user))) return 'defer'
    // An actor keeps its resources for life, so it is placed only where they are free now (no pipelining).
    let peer = this.full ? undefined : this.pick(req, req.actor ? NO_PIPELINE : this.depth)
    if (!peer && !req.actor && this.underShare(req.user)) peer = this.pick(req, this.overDepth)
    this.placedLast = peer
    return peer ?? (this.full ? 'defer' : 'busy')
  }

  /**
   * The peer for a task (pickPeer's choice). A pass's first picks scan every worker; a pass that
   * places more builds a LoadIndex (about the cost of a few scans), after which each pick looks at
   * the least loaded workers first: with 1,000 peers, a scan per task had been the coordinator's
   * largest cost per task, and building the index for a pass that places one task costs more.
   */
  private pick(req: PlacementRequest, depth: DepthOf): PeerSession | undefined {
    const none = this.nothingFits.get(depth)
    const shape = none && !req.avoid ? shapeOf(req) : undefined
    if (shape !== undefined && none!.has(shape)) return undefined
    const peer = ++this.picks <= SCANS_BEFORE_INDEX ? pickPeer(req, this.workers, depth) : (this.index ??= new LoadIndex(this.workers)).pick(req, depth)
    if (!peer && !req.avoid) {
      if (!none) this.nothingFits.set(depth, new Set([shapeOf(req)]))
      else none.add(shape ?? shapeOf(req))
    }
    return peer
  }

  /** No worker has cpu left at its pipeline depth. Workers only fill up during a pass, so each check carries on where the last stopped. */
  private allFull(): boolean {
    this.fullUpTo = firstWithRoom(this.workers, this.depth, this.fullUpTo)
    return this.fullUpTo === this.workers.length
  }

  /** The same, counting the over-commits a user under their fair share may have. */
  private allOverFull(): boolean {
    this.overFullUpTo = firstWithRoom(this.workers, this.overDepth, this.overFullUpTo)
    return this.overFullUpTo === this.workers.length
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

/** Picks a pass makes by scanning every worker before it builds a LoadIndex. */
const SCANS_BEFORE_INDEX = 4

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

/**
 * A pass's workers in buckets by load (cpu in use over cpu), for pickPeer's choice without a scan
 * of every worker: the peers holding the task's arguments first, then the buckets from the least
 * loaded, stopping at the first peer that fits. A pass changes no ledger but by its own placements,
 * so only the peer placed last moves before the next pick. Ties go to the first in a bucket (the
 * pass's order, then the order peers moved in), where pickPeer's go to the first in the pass's order.
 */
class LoadIndex {
  private readonly buckets = new Map<number, Set<PeerSession>>()
  /** The buckets' loads, lowest first. */
  private loads: number[] = []
  private readonly loadOf = new Map<PeerSession, number>()
  private byId?: Map<string, PeerSession>

  constructor(private readonly workers: readonly PeerSession[]) {
    // Bucketed first and the loads sorted once: adding each in order would cost a scan of the loads per peer.
    for (const peer of workers) {
      const load = peer.load()
      this.loadOf.set(peer, load)
      let bucket = this.buckets.get(load)
      if (!bucket) this.buckets.set(load, bucket = new Set())
      bucket.add(peer)
    }
    this.loads = [...this.buckets.keys()].sort((a, b) => a - b)
  }

  /** pickPeer's choice, looking at the least loaded workers first. */
  pick(p: PlacementRequest, depth: DepthOf): PeerSession | undefined {
    if (p.heldBytes) {
      const holder = this.bestHolder(p, depth)
      if (holder) return holder
    }
    for (const load of this.loads) {
      for (const peer of this.buckets.get(load)!) if (!p.avoid?.has(peer.id) && fits(p, peer, depth(peer))) return peer
    }
    return undefined
  }

  /** A placement changed the peer's load. */
  moved(peer: PeerSession): void {
    const was = this.loadOf.get(peer)
    const now = peer.load()
    if (was === undefined || was === now) return
    const bucket = this.buckets.get(was)!
    bucket.delete(peer)
    if (bucket.size === 0) { this.buckets.delete(was); this.loads.splice(this.loads.indexOf(was), 1) }
    this.add(peer, now)
  }

  /** Among the peers holding some of the task's argument bytes, the one with the most (then the least loaded) that fits. */
  private bestHolder(p: PlacementRequest, depth: DepthOf): PeerSession | undefined {
    this.byId ??= new Map(this.workers.map((s) => [s.id, s]))
    let best: PeerSession | undefined
    let bestHeld = 0
    let bestLoad = Infinity
    for (const [id, held] of p.heldBytes!) {
      const peer = this.byId.get(id)
      if (!peer || held < bestHeld || p.avoid?.has(id) || !fits(p, peer, depth(peer))) continue
      const load = peer.load()
      if (held > bestHeld || load < bestLoad) { best = peer; bestHeld = held; bestLoad = load }
    }
    return bestHeld > 0 ? best : undefined
  }

  private add(peer: PeerSession, load: number): void {
    this.loadOf.set(peer, load)
    let bucket = this.buckets.get(load)
    if (!bucket) {
      this.buckets.set(load, bucket = new Set())
      let i = this.loads.length
      while (i > 0 && this.loads[i - 1] > load) i--
      this.loads.splice(i, 0, load)
    }
    bucket.add(peer)
  }
}

/** What decides whether a request fits a peer, but for `avoid` (`heldBytes` only orders the peers that fit). */
function shapeOf(p: PlacementRequest): string {
  let shape = `${p.trusted ? 't' : ''}${p.actor ? 'a' : ''}${JSON.stringify(p.capabilities)}`
  for (const k in p.resources) shape += `${JSON.stringify(k)}=${p.resources[k]},`
  return shape
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

/** The index of the first worker from `from` on with cpu left at its depth (`peers.length`: none). */
function firstWithRoom(peers: readonly PeerSession[], depth: DepthOf, from: number): number {
  let i = from
  while (i < peers.length && (peers[i].used.cpu ?? 0) >= (peers[i].resources.cpu ?? 0) * depth(peers[i])) i++
  return i
}
