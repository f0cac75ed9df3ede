/**
 * Pulls of object bytes (Ray's PullManager): a reader asks, and gets the bytes inline, a pull
 * plan naming the holders with a grant each (a signed permission to read there, over WebRTC),
 * or the bytes relayed through the coordinator. Pulls of objects not made yet wait here; which
 * peers may signal each other is links.ts.
 */
import { createHmac } from 'node:crypto'
import { AuthError, grantPayload, serializeError, type SerializedError, type SignalMsg } from '@colony-grid/shared'
import { PlannedLinks } from '../links.js'
import type { PeerSession } from '../peer-session.js'
import type { ObjRec, ObjectDirectory } from './objects.js'
import type { Counters } from './options.js'
import type { PeerManager } from './peers.js'
import type { Recovery } from './recovery.js'

interface Pull { peer: string; req: number; relay?: boolean; job?: string }
interface Relay { requester: string; req: number; holder: string; id: string; tried: Set<string> }

export class PullManager {
  /** Pulls waiting for an object to be made (or a live copy of it to come back), by object. Bound: pending objects of running jobs; an object's pulls go when it is made or freed. */
  private readonly waiting = new Map<string, Pull[]>()
  /** Relays under way. Bound: connected peers' pulls (a peer's go when it leaves), each deleted at its last chunk. */
  private readonly relays = new Map<number, Relay>()
  private nextRelay = 1
  /** Which peers may signal each other (links.ts). */
  private readonly links = new PlannedLinks()

  constructor(private readonly peers: PeerManager, private readonly objects: ObjectDirectory, private readonly recovery: Recovery, private readonly counters: Counters) {}

  pull(s: PeerSession, req: number, id: string, relay?: boolean, job?: string): void {
    const o = this.objects.get(id)
    if (!o || !this.objects.mayRead(s, o, job)) {
      s.send({ t: 'pullFail', req, id, error: serializeError(new AuthError(`peer ${s.id} may not read object ${id}${job ? ` for job ${job}` : ''}`, { objectId: id })) })
      return
    }
    if (o.state === 'error') { s.send({ t: 'pullFail', req, id, error: o.error! }); return }
    if (o.state === 'pending') { this.wait(id, { peer: s.id, req, relay, job }); return }
    if (o.inline) { s.send({ t: 'chunk', req, seq: 0, data: o.inline, last: true, size: o.size }); return }
    if (!relay && s.p2p && this.planDirect(s, req, o)) return
    this.startRelay({ requester: s.id, req, holder: '', id, tried: new Set() })
  }

  private wait(id: string, p: Pull): void {
    const ps = this.waiting.get(id)
    if (ps) ps.push(p); else this.waiting.set(id, [p])
  }

  /** Tells the reader which peers hold the object, each with a grant to read it there; false if none can serve it directly. */
  private planDirect(s: PeerSession, req: number, o: ObjRec): boolean {
    const holders = [...o.locations].map((p) => this.peers.get(p)).filter((h): h is PeerSession => !!h && h.p2p && h.id !== s.id)
    if (holders.length === 0) return false
    holders.sort((a, b) => a.load() - b.load())
    this.objects.sentTo(o, s.id)
    for (const h of holders) this.links.pair(s.id, h.id)
    const exp = Date.now() + 60_000
    s.send({
      t: 'pullPlan', req, id: o.id, size: o.size, hash: o.hash,
      holders: holders.map((h) => {
        const g = { obj: o.id, job: o.job, to: s.id, holder: h.id, exp }
        return { peer: h.id, grant: { ...g, sig: createHmac('sha256', h.grantKey).update(grantPayload(g)).digest('hex') } }
      }),
    })
    return true
  }

  private startRelay(r: Relay): void {
    const o = this.objects.get(r.id)
    const requester = this.peers.get(r.requester)
    if (!o || !requester) return
    let holder: PeerSession | undefined
    for (const pid of o.locations) {
      const h = this.peers.get(pid)
      if (h && pid !== r.requester && !r.tried.has(pid) && (!holder || h.load() < holder.load())) holder = h
    }
    if (!holder) {
      if (o.locations.has(r.requester)) return // it made the object itself meanwhile, and answers its own pull
      // No live copy: wait for one (a reconnecting holder, or a rebuild from lineage); the pull is answered then.
      this.wait(o.id, { peer: r.requester, req: r.req, relay: true })
      if (!this.recovery.reconciling && o.state === 'ready') this.objects.lost(o)
      return
    }
    r.holder = holder.id
    r.tried.add(holder.id)
    this.objects.sentTo(o, r.requester)
    const rid = this.nextRelay++
    this.relays.set(rid, r)
    holder.send({ t: 'serve', req: rid, id: r.id })
  }

  /** A holder relays a chunk of an object through the coordinator. */
  chunk(s: PeerSession, rid: number, seq: number, data: Uint8Array, last: boolean, size?: number): void {
    const r = this.relays.get(rid)
    if (!r || r.holder !== s.id) return // an aborted relay
    const requester = this.peers.get(r.requester)
    if (!requester) { this.relays.delete(rid); return }
    const o = this.objects.get(r.id)
    // Size and hash come from the coordinator's record (the producer's word), not from the holder.
    requester.send({ t: 'chunk', req: r.req, seq, data, last, size: o?.size ?? size, hash: last ? o?.hash : undefined })
    this.counters.relayedBytes += data.byteLength
    if (last) this.relays.delete(rid)
  }

  /** A holder cannot serve a relay: it is not a location any more, and another holder is tried. */
  serveFail(s: PeerSession, rid: number): void {
    const r = this.relays.get(rid)
    if (!r || r.holder !== s.id) return
    this.relays.delete(rid)
    const o = this.objects.get(r.id)
    if (o) this.objects.removeLocation(o, s.id)
    this.startRelay(r)
  }

  /** Signalling carries addresses: it is relayed only between a reader and a holder a pull plan paired. */
  signal(s: PeerSession, m: SignalMsg): void {
    const to = this.peers.get(m.to)
    if (to?.p2p && s.p2p && this.links.allowed(s.id, to.id)) to.send({ t: 'signal', from: s.id, link: m.link, data: m.data })
    else this.counters.signalsRefused++
  }

  /** `objectReady`: pulls that waited for the object are answered now. */
  objectReady(o: ObjRec): void {
    if (this.waiting.size === 0) return
    const pulls = this.waiting.get(o.id)
    if (!pulls) return
    this.waiting.delete(o.id)
    for (const p of pulls) { const s = this.peers.get(p.peer); if (s) this.pull(s, p.req, o.id, p.relay, p.job) }
  }

  /** `objectFreed`: pulls that waited for it fail with `error`. */
  objectFreed(o: ObjRec, error: SerializedError): void {
    const pulls = this.waiting.get(o.id)
    if (!pulls) return
    this.waiting.delete(o.id)
    for (const p of pulls) this.peers.get(p.peer)?.send({ t: 'pullFail', req: p.req, id: o.id, error })
  }

  /** A peer left: its relays end, those it served go to another holder, and it may signal no one. */
  peerRemoved(s: PeerSession): void {
    if (s.p2p) this.links.forget(s.id)
    for (const [rid, r] of this.relays) {
      if (r.requester === s.id) this.relays.delete(rid)
      else if (r.holder === s.id) { this.relays.delete(rid); this.startRelay(r) }
    }
  }
}
