/**
 * The data plane: objects move between peers over WebRTC data channels
 * (simple-peer), with signalling relayed by the coordinator. One module for Node
 * (node-datachannel) and browsers (RTCPeerConnection); only the RtcFactory differs.
 *
 * Object protocol, on one data channel per pair of peers, messages of at most 64 KiB,
 * msgpack except the chunks, which are the bulk of the bytes and carry only their id:
 *   reader -> holder  req   { id, obj, grant }   the grant is signed by the coordinator
 *   holder -> reader  hdr   { id, size, hash }   or err { id, message }
 *   holder -> reader  data  0x00, id (u32), bytes   chunks, in order (a msgpack frame never starts with 0x00)
 *   holder -> reader  end   { id }
 *   reader -> holder  abort { id }
 */
import { FAULTS, decodeFrame, encodeFrame, sha256Hex, sha256Stream, verifyGrantSync, type Grant, type ObjectId, type PeerId, type PullPlanMsg, type SignalMsg, type StreamingHash } from '@colony-grid/shared'
import type { LocalObjectStore } from './object-store.js'
import { deferred, type Deferred } from './turn.js'

/** The parts of a simple-peer instance used here. */
export interface RtcPeerLike {
  signal(data: unknown): void
  send(data: Uint8Array): void
  destroy(): void
  on(ev: 'signal' | 'data' | 'connect' | 'close' | 'error', fn: (arg: never) => void): void
  /** simple-peer's data channel, for flow control. */
  _channel?: { bufferedAmount: number; bufferedAmountLowThreshold: number; addEventListener(ev: 'bufferedamountlow', fn: () => void): void; removeEventListener(ev: 'bufferedamountlow', fn: () => void): void }
}
export interface IceServer { urls: string | string[]; username?: string; credential?: string }
export type RtcFactory = ((opts: { initiator: boolean; iceServers: IceServer[]; relayOnly: boolean }) => RtcPeerLike) & {
  /** A data plane closed: let go of what the WebRTC implementation holds for the process, if no connection is left. */
  release?: () => void
}

export interface DataPlaneOptions {
  rtc: RtcFactory
  /** Only relay candidates (TURN); for peers behind strict NATs, and to test TURN. */
  relayOnly?: boolean
  /** Open links at most; the least recently used idle one is closed past this. */
  maxLinks?: number
  /** How long to wait for a link to connect before trying another holder or the relay. */
  connectTimeoutMs?: number
  /** How long a transfer may stall before it is given up. */
  stallTimeoutMs?: number
  /**
   * A streaming SHA-256, so objects are hashed while they arrive. By default the shared one: node:crypto
   * in Node, @noble/hashes in browsers (which works without a secure context, where WebCrypto is missing).
   */
  sha256?: () => StreamingHash
}

export type { StreamingHash }

const CHUNK = 64 * 1024 - 5 // plus the chunk's 5-byte header: the 64 KiB a message may carry
const WINDOW = 4 << 20 // bytes buffered in the channel before a sender waits; Chrome closes channels near 16 MB
const LOW = 1 << 20

type Wire =
  | { t: 'req'; id: number; obj: ObjectId; grant: Grant }
  | { t: 'hdr'; id: number; size: number; hash: string }
  | { t: 'data'; id: number; b: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'err'; id: number; message: string }
  | { t: 'abort'; id: number }

/** A transfer being received: chunks are copied into place and hashed as they come. */
interface Incoming {
  obj: ObjectId; size: number; hash?: string; buf: Uint8Array; got: number; hasher: StreamingHash
  done: Deferred<Uint8Array>; timer?: ReturnType<typeof setTimeout>
}

/** A link closed (before it opened, or under a transfer). */
class ChannelClosedError extends Error {}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

class Link {
  readonly connected = deferred<Link>()
  /** simple-peer said `connect`. The answering side may get a request before that (in browsers it checks stats first). */
  isOpen = false
  /** Dropped: nothing more is sent or awaited on it. */
  closed = false
  lastUsed = Date.now()
  readonly incoming = new Map<number, Incoming>()
  readonly serving = new Set<number>()
  constructor(readonly remote: PeerId, readonly linkId: string, readonly initiator: boolean, readonly rtc: RtcPeerLike) {
    this.connected.promise.catch(() => {})
  }
  busy(): boolean { return this.incoming.size > 0 || this.serving.size > 0 }
  write(m: Wire): void { this.rtc.send(encodeFrame([m])) }
  /** A chunk, in one copy: no msgpack on either side for the bytes that make up nearly all the traffic. */
  writeChunk(id: number, b: Uint8Array): void {
    const m = new Uint8Array(CHUNK_HEADER + b.byteLength)
    m[0] = CHUNK_TAG
    new DataView(m.buffer).setUint32(1, id)
    m.set(b, CHUNK_HEADER)
    this.rtc.send(m)
  }
}

const CHUNK_TAG = 0
const CHUNK_HEADER = 5

export class DataPlane {
  selfId = ''
  private grantKey: Uint8Array = new Uint8Array(0)
  private iceServers: IceServer[] = []
  private readonly links = new Map<PeerId, Link>()
  private readonly hashes = new Map<ObjectId, Promise<string>>()
  private readonly newHash: () => StreamingHash
  private nextId = 1
  /** Closed for good (`close`): no link is opened again, by this peer's reads or by another's signal. */
  private closed = false
  bytesIn = 0
  bytesOut = 0

  constructor(private readonly sendSignal: (m: SignalMsg) => void, private readonly store: LocalObjectStore, private readonly opts: DataPlaneOptions) {
    this.newHash = opts.sha256 ?? sha256Stream
  }

  /** Fresh STUN/TURN servers (TURN credentials expire): for links opened from now on. */
  setIceServers(iceServers: IceServer[]): void { this.iceServers = iceServers }

  /** From the coordinator's welcome: who this peer is, its grant key, and the ICE servers. */
  configure(selfId: PeerId, grantKey: Uint8Array, iceServers: IceServer[]): void {
    if (this.selfId && this.selfId !== selfId) this.closeAll()
    this.selfId = selfId
    this.grantKey = grantKey
    this.iceServers = iceServers
  }

  /** Fetches an object from the holders in a pull plan, in order; rejects if none can deliver it. */
  async fetch(plan: PullPlanMsg): Promise<Uint8Array> {
    let last: unknown
    for (const h of plan.holders) {
      for (let attempt = 0; attempt < 2; attempt++) {
        let opened = false
        try {
          const link = await this.link(h.peer)
          opened = true
          return await this.request(link, plan.id, h.grant, plan.size, plan.hash)
        } catch (e) {
          last = e
          // A channel that closed while it was forming (node-datachannel now and then refuses a candidate
          // that races its ICE transport) gets one more try; a timeout or a failed transfer does not.
          if (opened || !(e instanceof ChannelClosedError)) break
        }
      }
    }
    throw last instanceof Error ? last : new Error(`no holder of ${plan.id} could send it`)
  }

  /** The coordinator relayed a signal from another peer. */
  onSignal(from: PeerId, linkId: string, data: unknown): void {
    if (this.closed) return
    let link = this.links.get(from)
    if (link && link.linkId !== linkId) {
      // Both sides dialled at once (glare): the smaller peer id keeps its own attempt.
      if (link.initiator && this.selfId < from) return
      const replaced = link
      link = this.open(from, linkId, false)
      replaced.connected.resolve(link.connected.promise as unknown as Link)
      this.drop(replaced)
    }
    link ??= this.open(from, linkId, false)
    link.rtc.signal(data)
  }

  private link(remote: PeerId): Promise<Link> {
    let link = this.links.get(remote)
    if (!link) link = this.open(remote, `${this.selfId}-${(this.nextId++).toString(36)}`, true)
    link.lastUsed = Date.now()
    if (link.isOpen) return Promise.resolve(link)
    const ms = this.opts.connectTimeoutMs ?? 5000
    const current = link
    return new Promise<Link>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no data channel to ${remote} within ${ms} ms`)); if (!current.isOpen) this.drop(current) }, ms)
      current.connected.promise.then((l) => { clearTimeout(timer); resolve(l) }, (e) => { clearTimeout(timer); reject(e) })
    })
  }

  private open(remote: PeerId, linkId: string, initiator: boolean): Link {
    // A connection made after close would never be closed, and node-datachannel keeps a process alive while one is open.
    if (this.closed) throw new ChannelClosedError('this peer\'s data plane is closed')
    this.evictIdle()
    const rtc = this.opts.rtc({ initiator, iceServers: this.iceServers, relayOnly: !!this.opts.relayOnly })
    const link = new Link(remote, linkId, initiator, rtc)
    this.links.set(remote, link)
    rtc.on('signal', (data: never) => this.sendSignal({ t: 'signal', to: remote, link: linkId, data }))
    rtc.on('connect', () => {
      link.isOpen = true
      const ch = rtc._channel
      if (ch) ch.bufferedAmountLowThreshold = LOW
      link.connected.resolve(link)
    })
    rtc.on('data', (d: never) => this.receive(link, d as Uint8Array))
    rtc.on('close', () => this.drop(link))
    rtc.on('error', () => this.drop(link))
    return link
  }

  private evictIdle(): void {
    const max = this.opts.maxLinks ?? 32
    while (this.links.size >= max) {
      let lru: Link | undefined
      for (const l of this.links.values()) if (!l.busy() && (!lru || l.lastUsed < lru.lastUsed)) lru = l
      if (!lru) return // every link is busy: allow one more rather than break a transfer
      this.drop(lru)
    }
  }

  private drop(link: Link): void {
    if (this.links.get(link.remote) === link) this.links.delete(link.remote)
    link.isOpen = false
    link.closed = true
    const err = new ChannelClosedError(`the data channel to ${link.remote} closed`)
    link.connected.reject(err)
    for (const inc of link.incoming.values()) { clearTimeout(inc.timer); inc.done.reject(err) }
    link.incoming.clear()
    link.serving.clear()
    try { link.rtc.destroy() } catch { /* already gone */ }
  }

  private request(link: Link, obj: ObjectId, grant: Grant, size: number, hash?: string): Promise<Uint8Array> {
    const id = this.nextId++
    const inc: Incoming = { obj, size, hash, buf: new Uint8Array(size), got: 0, hasher: this.newHash(), done: deferred() }
    link.incoming.set(id, inc)
    this.armStall(link, id, inc)
    try { link.write({ t: 'req', id, obj, grant }) } catch (e) { this.failIncoming(link, id, `could not ask ${link.remote} for ${obj}: ${messageOf(e)}`) }
    return inc.done.promise
  }

  private armStall(link: Link, id: number, inc: Incoming): void {
    clearTimeout(inc.timer)
    inc.timer = setTimeout(() => this.failIncoming(link, id, `the transfer of ${inc.obj} from ${link.remote} stalled`), this.opts.stallTimeoutMs ?? 15_000)
  }

  private failIncoming(link: Link, id: number, message: string): void {
    const inc = link.incoming.get(id)
    if (!inc) return
    link.incoming.delete(id)
    clearTimeout(inc.timer)
    try { link.write({ t: 'abort', id }) } catch { /* closed */ }
    inc.done.reject(new Error(message))
  }

  private receive(link: Link, raw: Uint8Array): void {
    let m: Wire
    if (raw[0] === CHUNK_TAG && raw.byteLength >= CHUNK_HEADER) {
      m = { t: 'data', id: new DataView(raw.buffer, raw.byteOffset, CHUNK_HEADER).getUint32(1), b: raw.subarray(CHUNK_HEADER) }
    } else {
      try { m = decodeFrame(raw)[0] as Wire } catch { return }
    }
    if (!m || typeof m !== 'object' || typeof m.id !== 'number') return
    link.lastUsed = Date.now()
    switch (m.t) {
      // serve() answers every error it meets to the reader; it never rejects.
      case 'req': this.serve(link, m.id, m.obj, m.grant).catch(() => {}); return
      case 'abort': link.serving.delete(m.id); return
      case 'err': {
        const obj = link.incoming.get(m.id)?.obj
        this.failIncoming(link, m.id, `${link.remote} did not send ${obj}: ${String(m.message).slice(0, 300)}`)
        return
      }
    }
    const inc = link.incoming.get(m.id)
    if (!inc) return
    // Whatever goes wrong with a transfer settles it: the reader moves on to another holder or the relay.
    try {
      this.armStall(link, m.id, inc)
      if (m.t === 'hdr') {
        if (m.size !== inc.size) { this.failIncoming(link, m.id, `${link.remote} offers ${m.size} bytes of ${inc.obj}; it has ${inc.size}`); return }
        inc.hash ??= m.hash
      } else if (m.t === 'data') {
        if (!(m.b instanceof Uint8Array)) { this.failIncoming(link, m.id, `${link.remote} sent a malformed chunk of ${inc.obj}`); return }
        if (inc.got + m.b.byteLength > inc.size) { this.failIncoming(link, m.id, `${link.remote} sent more than ${inc.size} bytes of ${inc.obj}`); return }
        inc.buf.set(m.b, inc.got)
        inc.hasher.update(m.b)
        inc.got += m.b.byteLength
        this.bytesIn += m.b.byteLength
      } else if (m.t === 'end') {
        link.incoming.delete(m.id)
        clearTimeout(inc.timer)
        this.finish(inc, link.remote)
      }
    } catch (e) {
      const message = `receiving ${inc.obj} from ${link.remote} failed: ${messageOf(e)}; trying another copy or the relay`
      this.failIncoming(link, m.id, message)
      clearTimeout(inc.timer)
      inc.done.reject(new Error(message)) // a no-op where failIncoming settled it already
    }
  }

  /** Checks a complete transfer: size, then the hash its producer reported (else the holder's). */
  private finish(inc: Incoming, from: PeerId): void {
    if (inc.got !== inc.size) { inc.done.reject(new Error(`got ${inc.got} bytes of ${inc.obj} from ${from}; expected ${inc.size}`)); return }
    const hash = inc.hasher.digest()
    if (inc.hash && hash !== inc.hash) {
      inc.done.reject(new Error(`${inc.obj} from ${from} does not match its hash (sha256 ${hash.slice(0, 16)}…, expected ${String(inc.hash).slice(0, 16)}…): ${from} holds a corrupt copy; trying another copy or the relay`))
      return
    }
    inc.done.resolve(inc.buf)
  }

  /** Hash of an object held here, computed once. */
  hashOf(id: ObjectId, bytes: Uint8Array): Promise<string> {
    let h = this.hashes.get(id)
    if (!h) {
      const custom = this.opts.sha256
      h = custom ? Promise.resolve().then(() => { const s = custom(); s.update(bytes); return s.digest() }) : sha256Hex(bytes)
      this.hashes.set(id, h)
      // A failure is not kept: the next caller hashes again.
      h.catch(() => { if (this.hashes.get(id) === h) this.hashes.delete(id) })
    }
    return h
  }

  /** The hash of an object made here, already computed (a put): serving it needs no second pass. */
  knowHash(id: ObjectId, hash: string): void { this.hashes.set(id, Promise.resolve(hash)) }

  /**
   * Serves one request. Every failure answers the reader at once with `err` (it then tries another holder
   * or the relay), unless the channel itself is gone, which the reader sees as a close.
   */
  private async serve(link: Link, id: number, obj: ObjectId, grant: Grant): Promise<void> {
    link.serving.add(id) // busy from here, so the link is not evicted under this request
    try {
      if (!verifyGrantSync(grant, this.grantKey, { obj, to: link.remote, holder: this.selfId }, FAULTS.serveExpiredGrants ? 0 : Date.now())) { link.write({ t: 'err', id, message: 'grant refused' }); return }
      // The grant names the object's job too: bytes held here for another job are not served on it.
      const bytes = this.store.getFor(obj, grant.job)
      if (!bytes) { link.write({ t: 'err', id, message: 'not held here' }); return }
      link.write({ t: 'hdr', id, size: bytes.byteLength, hash: await this.hashOf(obj, bytes) })
      for (let off = 0; off < bytes.byteLength; off += CHUNK) {
        if (!link.serving.has(id) || link.closed) return
        await this.room(link)
        const b = bytes.subarray(off, Math.min(bytes.byteLength, off + CHUNK))
        link.writeChunk(id, b)
        this.bytesOut += b.byteLength
      }
      if (link.serving.has(id)) link.write({ t: 'end', id })
    } catch (e) {
      // The reader is told now, rather than waiting out its stall timer.
      if (!link.closed && link.serving.has(id)) {
        try { link.write({ t: 'err', id, message: `serving it failed: ${messageOf(e).slice(0, 200)}` }) } catch { /* the channel closed: the reader sees that */ }
      }
    } finally { link.serving.delete(id) }
  }

  /** Waits until the channel's buffer is under the window (backpressure). */
  private room(link: Link): Promise<void> {
    const ch = link.rtc._channel
    if (!ch || ch.bufferedAmount <= WINDOW) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => { ch.removeEventListener('bufferedamountlow', done); clearInterval(poll); resolve() }
      ch.addEventListener('bufferedamountlow', done)
      // Some WebRTC stacks never fire bufferedamountlow; a slow poll backs the event up.
      const poll = setInterval(() => { if (link.closed || ch.bufferedAmount <= LOW) done() }, 50)
    })
  }

  forget(id: ObjectId): void { this.hashes.delete(id) }

  /** The coordinator says this peer is gone: fail its transfers now, so readers move on to another copy. */
  dropPeer(remote: PeerId): void { const l = this.links.get(remote); if (l) this.drop(l) }


  closeAll(): void { for (const l of [...this.links.values()]) this.drop(l) }

  /**
   * The peer is leaving: every link closes, and none opens again. Signals still arrive while its
   * socket closes; a link opened for one then was never closed, and its native threads kept the
   * process from exiting (a test file hung after its last test, with libdatachannel's threads alive).
   */
  close(): void {
    this.closed = true
    this.closeAll()
    this.opts.rtc.release?.()
  }

  /** Links open or opening now. */
  get linkCount(): number { return this.links.size }
}
