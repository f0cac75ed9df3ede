import type { PeerSession } from './peer-session.js'

export interface Placement {
  resources: Record<string, number>
  capabilities: string[]
  /** Bytes of this task's non-inline arguments held by each peer. */
  heldBytes?: Map<string, number>
  /** Peers it must not go to (where its other replicas run or ran). */
  avoid?: ReadonlySet<string>
  /** Only a trusted peer may run it (a job's main, which no quorum can check). */
  trusted?: boolean
}

/**
 * How many tasks per unit of `cpu` a peer may hold (running plus queued there). For a user under
 * their fair share of a full grid, control.ts passes one more: an over-commit of one task per cpu slot.
 */
export type DepthOf = (peer: PeerSession) => number

/**
 * Picks a peer for a task: it must have the capabilities and the free resources;
 * among those, the one holding the most argument bytes wins, then the least loaded.
 * `depth` lets a peer queue a few tasks per executor, so executors never idle for
 * a round trip (Ray's pipelined leases).
 */
export function pickPeer(p: Placement, peers: Iterable<PeerSession>, depth: DepthOf): PeerSession | undefined {
  let best: PeerSession | undefined
  let bestHeld = -1
  let bestLoad = Infinity
  for (const peer of peers) {
    if (peer.role !== 'worker' || peer.closed || peer.paused || peer.quarantined) continue
    if (p.avoid?.has(peer.id) || !fits(p, peer, depth(peer))) continue
    const held = p.heldBytes?.get(peer.id) ?? 0
    const load = peer.load()
    if (held > bestHeld || (held === bestHeld && load < bestLoad)) { best = peer; bestHeld = held; bestLoad = load }
  }
  return best
}

function fits(p: Placement, peer: PeerSession, depth: number): boolean {
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

/** True when no worker has any cpu left: the scheduler can stop scanning its queue. */
export function allFull(peers: Iterable<PeerSession>, depth: DepthOf): boolean {
  for (const peer of peers) {
    if (peer.role === 'worker' && !peer.closed && !peer.paused && !peer.quarantined && (peer.used.cpu ?? 0) < (peer.resources.cpu ?? 0) * depth(peer)) return false
  }
  return true
}
