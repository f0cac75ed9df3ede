/**
 * A peer's one WebSocket to the coordinator: binary msgpack frames, one per turn,
 * reconnection with backoff, and replay of durable messages the coordinator has
 * not acknowledged yet (so a coordinator restart loses nothing a peer sent).
 */
import {
  AuthError, DURABLE_TYPES, LimitError, ProtocolError, decodeFrame, encodeFrame, deserializeError,
  type ColonyError, type CoordinatorToPeer, type HelloMsg, type PeerToCoordinator, type WelcomeMsg,
} from '@colony-grid/shared'
import { nextTurn } from './turn.js'

/** The parts of a WebSocket used here; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  readonly bufferedAmount: number
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}
export type WebSocketFactory = (url: string) => WebSocketLike

export interface ConnectionOptions {
  /** The coordinator's http(s) URL. */
  url: string
  webSocket: WebSocketFactory
  makeHello(): HelloMsg
  onWelcome(w: WelcomeMsg, reconnected: boolean): void
  onMessage(m: CoordinatorToPeer): void
  /** The coordinator refused this peer for good (bad token; for drivers also protocol misuse). */
  onFatal(err: ColonyError): void
  /**
   * Only a refused token ends the connection for good; any other refusal is followed by a reconnect
   * (after a longer pause). Workers: a message the coordinator refused may have been caused by job
   * code, and must not take a volunteer off the grid.
   */
  fatalOnlyForAuth?: boolean
  /** Said when the coordinator refused the connection and it will try again. */
  onRefused?(err: ColonyError): void
  onDown?(): void
  maxBackoffMs?: number
}

const FLUSH_BYTES = 1 << 20

export class ControlConnection {
  private ws?: WebSocketLike
  private state: 'connecting' | 'open' | 'closed' = 'connecting'
  private outbox: PeerToCoordinator[] = []
  private outboxBytes = 0
  private flushQueued = false
  /** Durable messages sent and not yet acknowledged, in order. */
  private unacked: PeerToCoordinator[] = []
  private ackedOnThisSocket = 0
  private welcomed = false
  private attempt = 0
  /** The coordinator refused the last connection: the next attempt waits longer. */
  private refused = false
  private pingTimer?: ReturnType<typeof setInterval>
  private retryTimer?: ReturnType<typeof setTimeout>

  constructor(private readonly opts: ConnectionOptions) {}

  private welcomedNow = false
  /** For people: is this peer on the grid right now? */
  get status(): 'connected' | 'connecting' | 'closed' {
    return this.state === 'closed' ? 'closed' : this.welcomedNow ? 'connected' : 'connecting'
  }
  get bufferedAmount(): number { return this.ws?.bufferedAmount ?? 0 }

  start(): void { this.open() }

  private wsUrl(): string {
    const u = new URL(this.opts.url)
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:'
    u.pathname = u.pathname.replace(/\/$/, '') + '/ws'
    return u.toString()
  }

  private open(): void {
    if (this.state === 'closed') return
    this.state = 'connecting'
    this.welcomedNow = false
    let ws: WebSocketLike
    try { ws = this.opts.webSocket(this.wsUrl()) } catch { this.scheduleReconnect(); return }
    this.ws = ws
    ws.binaryType = 'arraybuffer'
    ws.onopen = () => {
      if (this.ws !== ws) return
      this.state = 'open'
      this.ackedOnThisSocket = 0
      // hello first, then every durable message the coordinator may not have committed.
      this.outbox = [this.opts.makeHello(), ...this.unacked]
      this.flush()
    }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      let msgs: CoordinatorToPeer[]
      try { msgs = decodeFrame(toBytes(ev.data)) as CoordinatorToPeer[] } catch { return }
      for (const m of msgs) this.receive(m)
    }
    ws.onclose = (ev) => {
      if (this.ws !== ws) return
      this.ws = undefined
      clearInterval(this.pingTimer)
      const wasOpen = this.welcomedNow
      this.welcomedNow = false
      if (this.state === 'closed') return
      // Refusals that would only repeat on reconnect: a bad token, a protocol violation, a frame over the limit.
      if (ev.code === 4401 || ev.code === 4400 || ev.code === 1009) {
        const err = ev.code === 4401 ? new AuthError(ev.reason || 'refused by the coordinator')
          : ev.code === 1009 ? new LimitError('maxFrameBytes', ev.reason || 'a frame was over the coordinator\'s size limit')
            : new ProtocolError(ev.reason || 'protocol error')
        if (ev.code === 4401 || !this.opts.fatalOnlyForAuth) {
          this.state = 'closed'
          this.opts.onFatal(err)
          return
        }
        this.refused = true
        this.opts.onRefused?.(err)
      }
      if (wasOpen) this.opts.onDown?.()
      this.scheduleReconnect()
    }
    ws.onerror = () => { /* onclose follows */ }
  }

  private scheduleReconnect(): void {
    if (this.state === 'closed') return
    this.state = 'connecting'
    const max = this.opts.maxBackoffMs ?? 3000
    // After a refusal, reconnecting at once would only hammer the coordinator with the same mistake.
    const floor = this.refused ? 5000 : 0
    this.refused = false
    const delay = Math.max(floor, Math.min(max, 100 * 2 ** Math.min(this.attempt++, 10))) * (0.75 + Math.random() * 0.5)
    this.retryTimer = setTimeout(() => this.open(), delay)
  }

  private receive(m: CoordinatorToPeer): void {
    switch (m.t) {
      case 'welcome': {
        this.attempt = 0
        this.welcomedNow = true
        const reconnected = this.welcomed
        this.welcomed = true
        const ping = m.pingMs ?? 3000
        clearInterval(this.pingTimer)
        this.pingTimer = setInterval(() => this.send({ t: 'ping' }), ping)
        ;(this.pingTimer as { unref?: () => void }).unref?.()
        this.opts.onWelcome(m, reconnected)
        return
      }
      case 'ack': {
        const newly = m.n - this.ackedOnThisSocket
        if (newly > 0) { this.unacked.splice(0, newly); this.ackedOnThisSocket = m.n }
        return
      }
      case 'error':
        if (m.fatal && (m.code === 'AUTH' || (!this.welcomedNow && !this.opts.fatalOnlyForAuth))) {
          this.state = 'closed'
          this.opts.onFatal(deserializeError({ type: m.code === 'AUTH' ? 'AuthError' : 'ProtocolError', message: m.message }))
          this.ws?.close()
          return
        }
        this.opts.onMessage(m)
        return
      default:
        this.opts.onMessage(m)
    }
  }

  /** Queues a message for this turn's frame. Durable messages are also kept until acknowledged. */
  send(m: PeerToCoordinator): void {
    if (DURABLE_TYPES.has(m.t)) this.unacked.push(m)
    if (this.state !== 'open') return // durable ones are replayed on reconnect; the rest are re-sent by their owners
    this.outbox.push(m)
    this.outboxBytes += approxBytes(m)
    if (this.outboxBytes >= FLUSH_BYTES) this.flush()
    else if (!this.flushQueued) { this.flushQueued = true; nextTurn(() => this.flush()) }
  }

  private flush(): void {
    this.flushQueued = false
    if (this.outbox.length === 0 || !this.ws || this.state !== 'open') return
    const msgs = this.outbox
    this.outbox = []
    this.outboxBytes = 0
    // Frames stay near FLUSH_BYTES, far under the coordinator's limit, even when a reconnect replays a backlog.
    let start = 0, bytes = 0
    for (let i = 0; i < msgs.length; i++) {
      bytes += approxBytes(msgs[i])
      if (bytes >= FLUSH_BYTES || i === msgs.length - 1) {
        try { this.ws.send(encodeFrame(msgs.slice(start, i + 1))) } catch { return /* onclose reconnects */ }
        start = i + 1
        bytes = 0
      }
    }
  }

  /** Leaves cleanly: says bye, and stops reconnecting. */
  async close(): Promise<void> {
    if (this.state === 'closed') return
    if (this.state === 'open') { this.outbox.push({ t: 'bye' }); this.flush() }
    this.state = 'closed'
    clearInterval(this.pingTimer)
    clearTimeout(this.retryTimer)
    const ws = this.ws
    this.ws = undefined
    if (ws) {
      await waitFor(() => ws.bufferedAmount === 0, 2000)
      ws.close(1000, 'bye')
    }
  }
}

/** The bulk of a message's encoded size: its binary and source payloads. */
function approxBytes(m: PeerToCoordinator): number {
  switch (m.t) {
    case 'chunk': return m.data.byteLength + 32
    case 'submit': return m.spec.args.byteLength + 128
    case 'put': return (m.inline?.byteLength ?? 0) + 64
    case 'fn': return m.def.kind === 'inline' ? m.def.src.length + 64 : 128
    case 'done': return (m.results ?? []).reduce((n, r) => n + (r.inline?.byteLength ?? 0), 64)
    case 'log': return m.lines.reduce((n, l) => n + l.length, 32)
    default: return 64
  }
}

function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  throw new TypeError('unexpected WebSocket data')
}

/** Polls a condition; used only for draining a socket before close, which has no event for it. */
export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 5): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, stepMs))
  }
  return true
}
