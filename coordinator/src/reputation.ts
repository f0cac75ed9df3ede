/**
 * Reputation and quarantine (BOINC's idea), kept per peer id and per origin (the token and
 * address a peer joins with: identity.ts). A peer starts at 1; each disagreement with an
 * accepted quorum (quorum.ts) costs it, each agreement earns a little back, and below a
 * threshold it is quarantined: no more work until an operator releases it.
 *
 * A peer that keeps its id (it proved it with its secret) keeps its own standing. A fresh id
 * starts with its origin's: an origin carries the lowest score any of its peers fell to, and
 * a quarantine of any of them, so dropping an id to start again at 1 does not work.
 *
 * Bounded: a standing back at 1 is not kept (it says nothing), and past `max` standings of peers,
 * or of origins, the oldest that is not quarantined goes (a quarantine is what must not be
 * forgotten; a lowered score heals anyway).
 */

export interface Standing { score: number; quarantined: boolean }

const MAX_PEERS_REMEMBERED = 200_000
/** How far from the oldest a bound looks for a standing that is not quarantined, before it drops the oldest anyway. */
const EVICTION_SCAN = 1_000

export class Reputations {
  static readonly START = 1
  static readonly PENALTY = 0.25
  static readonly REWARD = 0.02
  /** Below this, a peer is quarantined. */
  static readonly THRESHOLD = 0.5
  private readonly peers = new Map<string, Standing>()
  private readonly origins = new Map<string, Standing>()
  private readonly originOf = new Map<string, string>()
  private readonly max: number
  private readonly forgotOrigin: (origin: string) => void

  /** `forgotOrigin`: an origin's standing was dropped (its store row should go too). */
  constructor(opts: { max?: number; forgotOrigin?: (origin: string) => void } = {}) {
    this.max = opts.max ?? MAX_PEERS_REMEMBERED
    this.forgotOrigin = opts.forgotOrigin ?? (() => {})
  }

  /** Standings held, of peers and of origins. */
  get size(): { peers: number; origins: number } { return { peers: this.peers.size, origins: this.origins.size } }

  score(peer: string): number { return this.peers.get(peer)?.score ?? Reputations.START }
  quarantined(peer: string): boolean { return !!this.peers.get(peer)?.quarantined }
  /** Where the peer last joined from. */
  origin(peer: string): string | undefined { return this.originOf.get(peer) }
  originStanding(origin: string): Standing { return this.origins.get(origin) ?? { score: Reputations.START, quarantined: false } }

  /** A peer joins from `origin`; a `fresh` id (not one it proved) starts with the origin's standing. */
  join(peer: string, origin: string, fresh: boolean): void {
    this.originOf.delete(peer)
    this.originOf.set(peer, origin)
    // Bounded: past it, the oldest peer's link to its origin goes (the origin keeps its standing).
    if (this.originOf.size > this.max) this.originOf.delete(this.originOf.keys().next().value!)
    const o = this.origins.get(origin)
    if (fresh && o) this.keep(this.peers, peer, { ...o })
  }

  /** Returns true when this agreement changed the standing of the peer's origin (it should be saved). */
  agreed(peer: string): boolean {
    const p = this.peers.get(peer)
    if (p) p.score = Math.min(Reputations.START, p.score + Reputations.REWARD)
    if (p && !p.quarantined && p.score >= Reputations.START) this.peers.delete(peer)
    const origin = this.originOf.get(peer)
    const o = origin ? this.origins.get(origin) : undefined
    if (!o || o.quarantined || o.score >= Reputations.START) return false
    o.score = Math.min(Reputations.START, o.score + Reputations.REWARD)
    // Healed: nothing to remember (the caller saves the standing of 1, which forgetting removes).
    if (o.score >= Reputations.START) { this.origins.delete(origin!); this.forgotOrigin(origin!); return false }
    return true
  }

  /** Returns true when this disagreement quarantines the peer. */
  disagreed(peer: string): boolean {
    const p = this.standing(this.peers, peer)
    p.score -= Reputations.PENALTY
    const origin = this.originOf.get(peer)
    if (origin) this.standing(this.origins, origin).score = Math.min(this.originStanding(origin).score, p.score)
    if (p.score >= Reputations.THRESHOLD || p.quarantined) return false
    p.quarantined = true
    if (origin) this.standing(this.origins, origin).quarantined = true
    return true
  }

  /** As it was before a coordinator restart. */
  restore(peer: string, score: number, quarantined: boolean): void { this.keep(this.peers, peer, { score, quarantined }) }
  restoreOrigin(origin: string, score: number, quarantined: boolean): void { this.keep(this.origins, origin, { score, quarantined }) }

  /** An operator lets the peer work again, with a fresh score, and clears its origin too. */
  release(peer: string): void {
    this.peers.delete(peer)
    const origin = this.originOf.get(peer)
    if (origin) this.origins.delete(origin)
  }

  private standing(map: Map<string, Standing>, key: string): Standing {
    return map.get(key) ?? this.keep(map, key, { score: Reputations.START, quarantined: false })
  }

  /** Sets a standing, then keeps the map within `max`. */
  private keep(map: Map<string, Standing>, key: string, s: Standing): Standing {
    map.delete(key)
    map.set(key, s)
    if (map.size <= this.max) return s
    let victim: string | undefined, looked = 0
    for (const [k, v] of map) { if (!v.quarantined && k !== key) { victim = k; break } if (++looked >= EVICTION_SCAN) break }
    victim ??= map.keys().next().value!
    map.delete(victim)
    if (map === this.origins) this.forgotOrigin(victim)
    return s
  }
}
