/**
 * Which peers may signal each other. WebRTC signalling carries a peer's addresses, so the
 * coordinator relays a `signal` only between a reader and a holder it paired in a pull plan
 * recently (either may start the connection, and both must answer). Anything else is dropped.
 */

/** How long a pairing lets the two peers signal, from the plan that made it (a data channel forms well within this, and is reused after). */
export const LINK_TTL_MS = 120_000

export class PlannedLinks {
  /** `a|b` with a < b, to when the pairing lapses. Bound: pairs of connected peers; lapsed ones are swept, a leaving peer's go. */
  private readonly until = new Map<string, number>()
  private sweepAt = 0

  constructor(private readonly ttlMs = LINK_TTL_MS) {}

  /** The coordinator told `reader` to read from `holder`: they may signal each other for a while. */
  pair(reader: string, holder: string, now = Date.now()): void {
    this.until.set(key(reader, holder), now + this.ttlMs)
    if (now >= this.sweepAt) this.sweep(now)
  }

  /** May `from` send signalling to `to`? */
  allowed(from: string, to: string, now = Date.now()): boolean {
    return (this.until.get(key(from, to)) ?? 0) > now
  }

  /** A peer left: its pairings go with it (a peer that comes back is paired again by its next plan). */
  forget(peer: string): void {
    for (const k of this.until.keys()) if (k.startsWith(`${peer}|`) || k.endsWith(`|${peer}`)) this.until.delete(k)
  }

  private sweep(now: number): void {
    this.sweepAt = now + this.ttlMs
    for (const [k, t] of this.until) if (t <= now) this.until.delete(k)
  }
}

const key = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`)
