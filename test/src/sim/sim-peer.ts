/**
 * One simulated peer: a plain object on one real WebSocket that speaks the real protocol, as
 * worker-web's Node peer does (core/peer.ts, core/connection.ts): a hello with the join token and
 * its resources, a ping every `pingMs` of the welcome, and a `done` with inline results for each
 * `run`, after `taskMs`. It runs no code: every task is a no-op that returns its first argument
 * (or null), so a driver can check each result. It hosts no actors, holds no objects, never
 * reconnects: when its socket closes it stays closed, and the close says who ended it.
 */
import WebSocket from 'ws'
import {
  PROTOCOL_VERSION, decodeFrame, decodeValue, encodeFrame, encodeValue,
  type CoordinatorToPeer, type HelloMsg, type PeerKind, type PeerToCoordinator, type ResultOut, type RunMsg,
} from '@colony-grid/shared'

export interface SimPeerSpec {
  kind: PeerKind
  cpu: number
  capabilities: string[]
  /** Say it can open WebRTC data channels, as Node peers and most tabs do (it is never asked to: it holds no objects). */
  p2p: boolean
}

/** How a simulated peer's socket ended; `byUs`: this side closed it (stop), so it is no death. */
export interface SimPeerEnd { code: number; reason: string; byUs: boolean; silenced: boolean }

export interface SimPeerHooks {
  /** Queues the peer for the fleet's once-per-turn flush. */
  dirty(p: SimPeer): void
  welcomed(p: SimPeer): void
  /** It was never welcomed: the coordinator refused it, or its connection failed. */
  refused(p: SimPeer, reason: string): void
  ended(p: SimPeer, end: SimPeerEnd): void
  taskDone(p: SimPeer): void
}

export class SimPeer {
  peerId = ''
  /** Messages queued for this turn's frame. */
  outbox: PeerToCoordinator[] = []
  /** It stopped pinging on purpose (to check that silence IS declared dead). */
  silenced = false
  private ws?: WebSocket
  private pingTimer?: NodeJS.Timeout
  /** Tasks waiting out `taskMs`, to drop on cancel. */
  private readonly pending = new Map<string, NodeJS.Timeout>()
  private closing = false
  private ended = false

  constructor(readonly spec: SimPeerSpec, private readonly opts: { url: string; token: string; taskMs: number }, private readonly hooks: SimPeerHooks) {}

  connect(): void {
    const ws = this.ws = new WebSocket(`${this.opts.url.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    ws.on('open', () => {
      const hello: HelloMsg = {
        t: 'hello', v: PROTOCOL_VERSION, token: this.opts.token, kind: this.spec.kind, role: 'worker',
        capabilities: this.spec.capabilities, resources: { cpu: this.spec.cpu },
      }
      if (this.spec.p2p) hello.p2p = true
      this.send(hello)
    })
    ws.on('message', (data: Buffer) => { for (const m of decodeFrame(data)) this.receive(m as CoordinatorToPeer) })
    ws.on('error', () => { /* 'close' follows and reports it */ })
    ws.on('close', (code, reason) => this.end(code, reason.toString()))
  }

  send(m: PeerToCoordinator): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return
    if (this.outbox.length === 0) this.hooks.dirty(this)
    this.outbox.push(m)
  }

  /** Sends the queued messages as one frame (the fleet calls it once per turn). */
  flush(): void {
    const msgs = this.outbox
    this.outbox = []
    if (msgs.length === 0 || this.ws?.readyState !== WebSocket.OPEN) return
    this.ws.send(encodeFrame(msgs))
  }

  /** Stops pinging (the coordinator should declare it dead past its heartbeat timeout). */
  silence(): void { this.silenced = true; clearInterval(this.pingTimer) }

  /** Leaves as a real peer does: bye, then a clean close. */
  leave(): Promise<void> {
    const ws = this.ws
    if (this.ended || !ws) return Promise.resolve()
    this.closing = true
    this.stopTimers()
    if (ws.readyState === WebSocket.OPEN) { this.outbox = [{ t: 'bye' }]; this.flush() }
    return new Promise((resolve) => {
      ws.once('close', () => resolve())
      ws.close(1000, 'bye')
      // One that does not finish the close handshake in time is cut.
      setTimeout(() => ws.terminate(), 5000).unref()
    })
  }

  private receive(m: CoordinatorToPeer): void {
    switch (m.t) {
      case 'welcome':
        this.peerId = m.peerId
        this.pingTimer = setInterval(() => this.send({ t: 'ping' }), m.pingMs)
        this.pingTimer.unref()
        this.hooks.welcomed(this)
        return
      case 'run': return this.run(m)
      case 'cancelTask': { clearTimeout(this.pending.get(m.task)); this.pending.delete(m.task); return }
      case 'error': if (m.fatal && !this.peerId) this.hooks.refused(this, `${m.code}: ${m.message}`); return
      default: return // acks, pongs, drops: nothing to keep
    }
  }

  private run(m: RunMsg): void {
    const started = performance.now()
    const answer = () => {
      this.pending.delete(m.spec.id)
      const results = noOpResults(m)
      this.send({ t: 'done', task: m.spec.id, attempt: m.attempt, results, ms: performance.now() - started })
      this.hooks.taskDone(this)
    }
    if (this.opts.taskMs <= 0) { answer(); return }
    this.pending.set(m.spec.id, setTimeout(answer, this.opts.taskMs))
  }

  private end(code: number, reason: string): void {
    if (this.ended) return
    this.ended = true
    this.stopTimers()
    if (!this.peerId && !this.closing) this.hooks.refused(this, `its connection to ${this.opts.url} closed before a welcome (${code}${reason ? `: ${reason}` : ''}): is the coordinator running there?`)
    this.hooks.ended(this, { code, reason, byUs: this.closing, silenced: this.silenced })
  }

  private stopTimers(): void {
    clearInterval(this.pingTimer)
    for (const t of this.pending.values()) clearTimeout(t)
    this.pending.clear()
  }
}

/** A no-op's results: its first argument (so a driver can check it came back), else null, once per return. */
function noOpResults(m: RunMsg): ResultOut[] {
  let value: unknown = null
  try { const args = decodeValue<unknown[]>(m.spec.args); if (Array.isArray(args) && args.length > 0) value = args[0] } catch { /* not ours to judge */ }
  const inline = encodeValue(value)
  return Array.from({ length: m.spec.opts.numReturns ?? 1 }, () => ({ size: inline.byteLength, inline }))
}
