/**
 * The peer table (Ray's GcsNodeManager): sessions, admission, heartbeats, loss, reputation,
 * and the one check of whether a peer may take work now (`schedulable`).
 */
import { AuthError, LimitError, PROTOCOL_VERSION, ProtocolError, type HelloMsg } from '@colony-grid/shared'
import { PeerSession, type PeerSocket } from '../peer-session.js'
import { PeerIdentities, originOf } from '../identity.js'
import { Reputations } from '../reputation.js'
import type { Vote } from '../quorum.js'
import type { StoreSnapshot } from '../store/types.js'
import type { TokenGrant } from '../tokens.js'
import type { ControlBus } from './events.js'
import type { ControlOptions, Counters } from './options.js'

export class PeerManager {
  /** Bound: connected peers (maxPeersPerToken per token); a session goes when its peer leaves or misses heartbeats. */
  private readonly sessions = new Map<string, PeerSession>()
  /** The one copy of every peer's standing (sessions do not keep one); the store keeps it across restarts. */
  readonly reputations = new Reputations({ forgotOrigin: (origin) => this.opts.store.origins.remove(origin) })
  /** Peer ids and the secrets that prove them (identity.ts). */
  readonly identities = new PeerIdentities((id) => this.sessions.has(id))
  /** Bumped whenever what the connected workers offer may have changed: a peer came, left, paused, or was quarantined or released. */
  epoch = 0
  private readonly heartbeatTimer: NodeJS.Timeout
  private readonly heartbeatCheckMs: number
  /** When the heartbeats were last checked (monotonic ms). */
  private checkedAt = performance.now()
  /** The last check was skipped because this coordinator lagged (see checkHeartbeats). */
  private skippedLastCheck = false
  private readonly iceTimer?: NodeJS.Timeout

  constructor(private readonly opts: ControlOptions, private readonly bus: ControlBus, private readonly counters: Counters, requestTick: () => void) {
    this.heartbeatCheckMs = Math.max(500, opts.heartbeatTimeoutMs / 4)
    this.heartbeatTimer = setInterval(() => this.checkHeartbeats(), this.heartbeatCheckMs)
    this.heartbeatTimer.unref()
    if (opts.iceRefreshMs) {
      // A peer connected for longer than its TURN credentials live could open no new relayed channel.
      this.iceTimer = setInterval(() => {
        for (const s of this.sessions.values()) if (s.p2p) s.send({ t: 'ice', iceServers: opts.iceServersFor(s.id) })
        requestTick()
      }, opts.iceRefreshMs)
      this.iceTimer.unref()
    }
  }

  /** Standings and proven ids as the store kept them. */
  initialize(snap: StoreSnapshot): void {
    for (const p of snap.peers) {
      if (p.reputation !== undefined) this.reputations.restore(p.id, p.reputation, !!p.quarantined)
      // Its id, kept for a peer that proves it with its secret.
      if (p.secretHash) this.identities.restore(p.id, { secretHash: p.secretHash, role: p.role, origin: p.origin ?? '' })
    }
    for (const o of snap.origins ?? []) this.reputations.restoreOrigin(o.origin, o.reputation, o.quarantined)
  }

  get all(): ReadonlyMap<string, PeerSession> { return this.sessions }
  get(id: string | undefined): PeerSession | undefined { return id === undefined ? undefined : this.sessions.get(id) }
  has(id: string): boolean { return this.sessions.has(id) }

  /**
   * May this peer take work now? A connected worker, not paused, not quarantined. Every
   * placement decision (scheduling, replicas, copies of objects, fair-share capacity) asks this.
   */
  schedulable(s: PeerSession): boolean {
    return s.role === 'worker' && !s.closed && !s.paused && !this.reputations.quarantined(s.id)
  }

  /** The workers that may take work now (a snapshot, for one scheduling pass). */
  workers(): PeerSession[] {
    const out: PeerSession[] = []
    for (const s of this.sessions.values()) if (this.schedulable(s)) out.push(s)
    return out
  }

  /** The workers that could take work at some point without an operator's help (paused ones count: they resume). */
  candidates(): PeerSession[] {
    const out: PeerSession[] = []
    for (const s of this.sessions.values()) if (s.role === 'worker' && !s.closed && !this.reputations.quarantined(s.id)) out.push(s)
    return out
  }

  /** The cpu of the workers that take tasks now. */
  capacity(): number {
    let cpu = 0
    for (const s of this.sessions.values()) if (this.schedulable(s)) cpu += s.resources.cpu ?? 0
    return cpu
  }

  /** What the connected workers offer, for a message that says why work cannot be placed. */
  describeOffers(): string {
    const kinds = new Map<string, number>()
    for (const s of this.candidates()) {
      const res = Object.entries(s.resources).map(([k, v]) => `${k} ${v}`).join(', ') || 'no resources'
      const what = `${res}; capabilities [${[...s.capabilities].join(', ')}]${s.trusted ? '; trusted' : ''}`
      kinds.set(what, (kinds.get(what) ?? 0) + 1)
    }
    if (kinds.size === 0) return 'no worker is connected'
    const list = [...kinds].slice(0, 8).map(([what, n]) => `${n} with ${what}`)
    return `connected workers: ${list.join(' | ')}${kinds.size > 8 ? ` | ${kinds.size - 8} more kinds` : ''}`
  }

  standing(id: string): { reputation: number; quarantined: boolean } {
    return { reputation: this.reputations.score(id), quarantined: this.reputations.quarantined(id) }
  }

  /**
   * Admits a peer after its hello. `address`: where it connects from (its origin is that and its
   * token: identity.ts). Ids are public (/api/peers), so a hello keeps its `peerId` only with the
   * `peerSecret` the coordinator gave it for that id; otherwise it is a new peer with a fresh id,
   * and nothing of the id it named. Throws AuthError.
   */
  admit(socket: PeerSocket, m: HelloMsg, grant: TokenGrant, newId: () => string, address?: string): { s: PeerSession; secret: string } {
    // Peers of another version would misread each other's data channels (the chunk format, say): refuse them plainly.
    if (m.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(`this ${m.kind === 'browser' ? 'page' : 'peer'} speaks Colony protocol v${m.v}; the coordinator speaks v${PROTOCOL_VERSION}: ${m.kind === 'browser' ? 'reload the page' : 'install the same version of @colony-grid/client and @colony-grid/worker-web as the coordinator'}`)
    }
    if (m.role !== grant.role) {
      throw new AuthError(m.role === 'driver'
        ? 'a join token cannot submit jobs: connect drivers with the submit token'
        : 'workers join with the join token, not the submit token')
    }
    const origin = originOf(grant.id, address)
    const resumed = !!m.peerId && this.identities.verify(m.peerId, m.peerSecret, m.role)
    let id = resumed ? m.peerId! : newId()
    while (!resumed && (this.sessions.has(id) || this.identities.get(id))) id = newId()
    const stale = this.sessions.get(id)
    let sameToken = 0
    for (const x of this.sessions.values()) if (x.tokenId === grant.id && x !== stale) sameToken++
    if (sameToken >= this.opts.quotas.maxPeersPerToken) {
      throw new LimitError('maxPeersPerToken', `${sameToken} peers are already connected with this token; the maxPeersPerToken limit is ${this.opts.quotas.maxPeersPerToken}`)
    }
    if (stale) { stale.socket.close(4000, 'replaced by a newer connection'); this.remove(stale, 'reconnected') }
    const secret = resumed ? m.peerSecret! : this.identities.issue(id, m.role, origin)
    if (resumed) this.identities.moved(id, origin)
    const s = new PeerSession(id, socket)
    s.tokenId = grant.id
    s.trusted = m.role === 'worker' && grant.trusted
    s.resumed = resumed
    s.origin = origin
    s.address = address
    s.kind = m.kind
    // A fresh id starts with its token and address's standing: dropping an id does not wash a quarantine.
    if (m.role === 'worker') this.reputations.join(id, origin, !resumed)
    s.role = m.role
    s.capabilities = new Set(m.capabilities)
    s.p2p = !!m.p2p
    s.resources = m.role === 'worker' ? { ...m.resources } : {}
    this.sessions.set(id, s)
    this.epoch++
    this.save(s)
    return { s, secret }
  }

  /** The peer is gone: every manager lets go of what it had there (the `peerRemoved` listeners). */
  remove(s: PeerSession, why: string): void {
    if (s.closed) return
    s.closed = true
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id)
    this.epoch++
    this.opts.store.peers.remove(s.id)
    if (s.p2p) for (const other of this.sessions.values()) if (other.p2p) other.send({ t: 'peerLeft', peer: s.id })
    this.bus.emit('peerRemoved', s, why)
  }

  /** `jobFinished`: no peer is sent its functions again. */
  jobFinished(job: string): void { for (const s of this.sessions.values()) s.knownFns.delete(job) }

  setPaused(s: PeerSession, paused: boolean): void {
    if (s.paused !== paused) this.epoch++
    s.paused = paused
  }

  /** The peers joined with a token (to drop them when it is revoked). */
  withToken(tokenId: string): PeerSession[] {
    return [...this.sessions.values()].filter((s) => s.tokenId === tokenId)
  }

  private checkHeartbeats(): void {
    const now = performance.now()
    const since = now - this.checkedAt
    this.checkedAt = now
    // This coordinator's own loop lagged (its process was starved of CPU, paused or blocked): timers
    // run before sockets are read, so the pings peers sent meanwhile may still wait unread. Blame no
    // peer now; the next check comes after the sockets have been read. Only one check in a row is
    // skipped, so a coordinator that lags all the time still drops the peers that really went silent.
    if (since > this.heartbeatCheckMs * 2 && !this.skippedLastCheck) {
      this.skippedLastCheck = true
      this.opts.log(`heartbeats checked ${Math.round(since)} ms apart, not every ${this.heartbeatCheckMs} ms: this coordinator was starved of CPU or blocked; no peer is dropped for it`)
      return
    }
    this.skippedLastCheck = false
    const deadline = Date.now() - this.opts.heartbeatTimeoutMs
    for (const s of this.sessions.values()) {
      if (s.lastSeen < deadline) { s.socket.close(4008, 'heartbeat timeout'); this.remove(s, 'heartbeat timeout') }
    }
  }

  /** A quorum was decided (quorum-manager.ts): peers that agreed with it gain standing, those that disagreed lose it. */
  judged(agreeing: readonly Vote[], votes: readonly Vote[], what: string): void {
    for (const v of votes) {
      if (!v.peer) continue // ran before a coordinator restart: who ran it is not kept
      if (agreeing.includes(v)) { if (this.reputations.agreed(v.peer)) this.saveOrigin(v.peer); continue }
      this.counters.quorumDisagreements++
      const held = this.reputations.disagreed(v.peer)
      this.saveOrigin(v.peer)
      const s = this.sessions.get(v.peer)
      if (s) this.save(s)
      this.opts.log(`peer ${v.peer} disagreed with the quorum on ${what}; reputation ${this.reputations.score(v.peer).toFixed(2)}${held ? ': quarantined' : ''}`)
      if (held) { this.counters.peersQuarantined++; this.epoch++ }
    }
  }

  /** An operator lets a quarantined peer work again. */
  release(peer: string): boolean {
    const was = this.reputations.quarantined(peer)
    const origin = this.reputations.origin(peer)
    this.reputations.release(peer)
    if (origin) this.opts.store.origins.remove(origin)
    const s = this.sessions.get(peer)
    if (s) this.save(s)
    if (was) { this.epoch++; this.opts.log(`peer ${peer} released from quarantine`) }
    return was
  }

  /** The peer's row: its standing, and what proves its id (so it keeps the id after a restart). */
  private save(s: PeerSession): void {
    const reputation = this.reputations.score(s.id), quarantined = this.reputations.quarantined(s.id)
    const identity = this.identities.get(s.id)
    this.opts.store.peers.put({
      id: s.id, kind: s.kind, role: s.role, lastSeen: Date.now(), ...(reputation < 1 || quarantined ? { reputation, quarantined } : {}),
      ...(identity ? { secretHash: identity.secretHash, origin: identity.origin } : {}),
    })
  }

  /** The standing of the token and address the peer joined from, kept for a restart. */
  private saveOrigin(peer: string): void {
    const origin = this.reputations.origin(peer)
    if (!origin) return
    const { score, quarantined } = this.reputations.originStanding(origin)
    this.opts.store.origins.put({ origin, reputation: score, quarantined })
  }

  close(): void {
    clearInterval(this.heartbeatTimer)
    clearInterval(this.iceTimer)
  }
}
