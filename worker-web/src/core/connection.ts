/**
 * A peer's one WebSocket to the coordinator: binary msgpack frames, one per turn,
 * reconnection with backoff, and replay of durable messages the coordinator has
 * not acknowledged yet (so a coordinator restart loses nothing a peer sent).
 *
 * A grid may have several coordinators (hot standbys sharing one store): the peer keeps
 * their URLs and fails over along them, and the same replay makes a failover lose nothing.
 */
import {
  AuthError, CLOSE_STANDBY, DURABLE_TYPES, LimitError, MAX_RECONNECT_PAUSE_MS, ProtocolError, decodeFrame, encodeFrame, deserializeError,
  type ColonyError, type CoordinatorToPeer, type HelloMsg, type PeerToCoordinator, type WebSocketLike, type WelcomeMsg,
} from '@colony-grid/shared'
import { nextTurn } from './turn.js'

export type { WebSocketLike }
export type WebSocketFactory = (url: string) => WebSocketLike

export interface ConnectionOptions {
  /**
   * The coordinator's http(s) URL, or the URLs of a grid's coordinators (hot standbys): an array, or
   * one string with a comma-separated list (`https://a.example,https://b.example`). Tried in order;
   * a welcome's `coordinators` list comes first from then on, and these stay as a fallback.
   */
  url: string | readonly string[]
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
  /**
   * Said when a coordinator other than the last one to welcome this peer welcomes it (the first
   * welcome too), before onWelcome: HTTP requests to the coordinator go to `url` from now on.
   */
  onCoordinatorChanged?(url: string, previous: string | undefined): void
  maxBackoffMs?: number
}

/**
 * The coordinator URLs in `url` (an array, or a comma-separated list), trimmed, without duplicates,
 * each normalized to its http(s) form without a trailing slash. Throws a TypeError when there is none,
 * or one is not an http(s) (or ws(s)) URL.
 */
export function coordinatorUrls(url: string | readonly string[]): string[] {
  const parts = (typeof url === 'string' ? url.split(',') : url).map((u) => u.trim()).filter(Boolean)
  if (parts.length === 0) throw new TypeError('no coordinator URL given')
  return [...new Set(parts.map(normalizeUrl))]
}

function normalizeUrl(url: string): string {
  let u: URL
  try { u = new URL(url) } catch { throw new TypeError(`'${url}' is not a coordinator URL (http://host:port)`) }
  // ws(s) URLs name the same coordinator; its HTTP requests need the http(s) form.
  if (u.protocol === 'ws:' || u.protocol === 'wss:') u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:'
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`'${url}' is not a coordinator URL (http://host:port)`)
  return u.href.replace(/\/$/, '')
}

/** The leader's URL in a standby's close reason, if it names one. */
function leaderIn(reason: string): string | undefined {
  const m = /\bhttps?:\/\/[^\s,;]+/.exec(reason)
  if (!m) return undefined
  try { return normalizeUrl(m[0]) } catch { return undefined }
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
  /** Backoff pauses since the last welcome: each pause is longer. */
  private attempt = 0
  /** The coordinator refused the last connection: the next attempt waits longer. */
  private refused = false
  private pingTimer?: ReturnType<typeof setInterval>
  private retryTimer?: ReturnType<typeof setTimeout>
  /** The URLs given: a fallback behind whatever list the coordinators send. */
  private readonly given: string[]
  /** The coordinators to try, in order: the last welcome's list (leader first), then the given URLs it lacks. */
  private urls: string[]
  /** Where in `urls` the peer is connected, or trying to connect. */
  private current = 0
  /** Failed attempts since the last welcome or backoff pause: a full cycle through `urls` pauses, a partial one does not. */
  private triedInCycle = 0
  /** The URL of the coordinator that welcomed this peer last. */
  private welcomedBy?: string

  constructor(private readonly opts: ConnectionOptions) {
    this.given = coordinatorUrls(opts.url)
    this.urls = [...this.given]
  }

  /** The coordinator this peer is connected to (or trying to reach): its HTTP requests go here. */
  get currentUrl(): string { return this.urls[this.current] }
  /** Every coordinator URL this peer knows, in the order it tries them. */
  get coordinators(): readonly string[] { return this.urls }

  private welcomedNow = false
  /** For people: is this peer on the grid right now? */
  get status(): 'connected' | 'connecting' | 'closed' {
    return this.state === 'closed' ? 'closed' : this.welcomedNow ? 'connected' : 'connecting'
  }
  get bufferedAmount(): number { return this.ws?.bufferedAmount ?? 0 }

  start(): void { this.open() }

  private wsUrl(): string {
    const u = new URL(this.currentUrl)
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
      // hello first, then every durable message the coordinator may not have committed, then the log lines written meanwhile.
      this.outbox = [this.opts.makeHello(), ...this.unacked, ...this.outbox.filter((m) => m.t === 'log')]
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
      this.scheduleReconnect(ev.code === CLOSE_STANDBY ? { leader: leaderIn(ev.reason) } : {})
    }
    ws.onerror = () => { /* onclose follows */ }
  }

  /**
   * After a failed attempt or a dropped connection: the next coordinator at once, while some of the
   * list is untried since the last pause; after a full cycle, the same one backoff pause as with one URL.
   * `leader`: the leader a standby named, tried next.
   */
  private scheduleReconnect({ leader }: { leader?: string } = {}): void {
    if (this.state === 'closed') return
    this.state = 'connecting'
    const max = this.opts.maxBackoffMs ?? MAX_RECONNECT_PAUSE_MS
    // After a refusal, reconnecting at once would only hammer the coordinator with the same mistake.
    // It came from the leader (a standby refuses with CLOSE_STANDBY), so the peer stays with it.
    const floor = this.refused ? 5000 : 0
    const rotate = !this.refused
    this.refused = false
    if (rotate) {
      this.rotate(leader)
      if (++this.triedInCycle < this.urls.length) {
        // A short jitter only: peers that lost the same coordinator reach the next one spread out a little.
        this.retryTimer = setTimeout(() => this.open(), Math.random() * 50)
        return
      }
      this.triedInCycle = 0
    }
    const delay = Math.max(floor, Math.min(max, 100 * 2 ** Math.min(this.attempt++, 10))) * (0.75 + Math.random() * 0.5)
    this.retryTimer = setTimeout(() => this.open(), delay)
  }

  /** Moves on to the next coordinator: the leader a standby named (added if new), else the next in the list. */
  private rotate(leader?: string): void {
    if (leader && leader !== this.currentUrl) {
      let i = this.urls.indexOf(leader)
      if (i < 0) this.urls.splice(i = this.current + 1, 0, leader)
      this.current = i
    } else this.current = (this.current + 1) % this.urls.length
  }

  /**
   * A welcome's list is authoritative (the leader first); the given URLs stay behind it as a fallback,
   * and the peer's place is where it is connected now.
   */
  private adoptCoordinators(list: unknown): void {
    if (!Array.isArray(list)) return
    const fromWelcome = list.flatMap((u) => { try { return typeof u === 'string' ? [normalizeUrl(u)] : [] } catch { return [] } })
    if (fromWelcome.length === 0) return
    const here = this.currentUrl
    this.urls = [...new Set([...fromWelcome, ...this.given, here])]
    this.current = this.urls.indexOf(here)
  }

  private receive(m: CoordinatorToPeer): void {
    switch (m.t) {
      case 'welcome': {
        this.attempt = 0
        this.triedInCycle = 0
        this.adoptCoordinators(m.coordinators)
        this.welcomedNow = true
        const reconnected = this.welcomed
        this.welcomed = true
        if (this.currentUrl !== this.welcomedBy) {
          const previous = this.welcomedBy
          this.welcomedBy = this.currentUrl
          this.opts.onCoordinatorChanged?.(this.currentUrl, previous)
        }
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
    // Durable ones are replayed on reconnect, and tasks' log lines (up to FLUSH_BYTES) wait for it; the rest are re-sent by their owners.
    if (this.state !== 'open' && (m.t !== 'log' || this.outboxBytes >= FLUSH_BYTES)) return
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
