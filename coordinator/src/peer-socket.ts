/**
 * One peer's WebSocket at the coordinator: the hello (within a deadline, with a valid
 * token), then validated frames, each handed to the ControlPlane. Bad messages get a clear error,
 * and too many close the socket; past its message rate a connection is read more slowly
 * (a token bucket), never dropped, since a peer's durable messages must all land.
 */
import type { WSEvents } from 'hono/ws'
import {
  AuthError, ColonyError, FAULTS, LimitError, ProtocolError, decodeFrame, encodeFrame, newPeerId,
  parsePeerMessage, type ErrorMsg, type HelloMsg, type Limits,
} from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import type { PeerSession, PeerSocket } from './peer-session.js'
import type { TokenRegistry } from './tokens.js'

export interface PeerSocketOptions {
  control: ControlPlane
  registry: TokenRegistry
  limits: Limits
  /** Messages a second (bursts of twice that). */
  maxRate: number
  /** Bad messages tolerated before the socket is closed. */
  maxBad: number
  helloTimeoutMs: number
  log(line: string): void
  /** Counted for /metrics. */
  stats: { helloTimeouts: number }
}

/** The handlers of one peer's socket, from `address` (see server.ts remoteAddress). */
export function peerSocket(o: PeerSocketOptions, address: string | undefined): WSEvents {
  const { control, registry, limits, maxRate, maxBad, helloTimeoutMs, log, stats } = o
  let session: PeerSession | undefined
  let helloTimer: ReturnType<typeof setTimeout> | undefined
  let bad = 0
  // A token bucket per connection: maxRate messages a second, bursts of twice that.
  let allowance = maxRate * 2, refilled = performance.now(), warnedAt = -Infinity, closed = false
  let wsRaw: { pause(): void; resume(): void } | undefined
  let drainTimer: ReturnType<typeof setTimeout> | undefined
  const deferred: unknown[][] = []
  let socket: PeerSocket
  const sendError = (err: ColonyError | Error, fatal: boolean) => {
    const m: ErrorMsg = { t: 'error', code: (err as ColonyError).code ?? 'INTERNAL', message: err.message, fatal }
    if (err instanceof LimitError) m.limit = err.limit
    if (session && !fatal) { session.send(m); control.requestTick(); return }
    try { socket.send(encodeFrame([m])) } catch { /* closed */ }
  }
  const reject = (err: ColonyError, closeCode: number) => {
    control.counters.badMessages++
    sendError(err, true)
    socket.close(closeCode, err.message.slice(0, 120))
  }
  /** Takes `n` messages from the rate allowance (a frame larger than the whole burst is let through once it is full). */
  const admit = (n: number): boolean => {
    const now = performance.now()
    allowance = Math.min(maxRate * 2, allowance + ((now - refilled) / 1000) * maxRate)
    refilled = now
    if (allowance < Math.min(n, maxRate * 2)) return false
    allowance -= n
    return true
  }
  // Over the rate, nothing is dropped (a peer's durable messages must all land): frames wait, and
  // the connection is not read meanwhile, so TCP slows the sender down to the rate.
  const defer = (raws: unknown[]) => {
    deferred.push(raws)
    control.counters.rateLimited += raws.length
    const now = performance.now()
    if (now - warnedAt > 1000) { warnedAt = now; sendError(new LimitError('maxMessageRate', `more than ${maxRate} messages a second from this connection: it is slowed down`), false) }
    if (drainTimer) return
    wsRaw?.pause()
    const drain = () => {
      drainTimer = undefined
      while (deferred.length > 0 && !closed && admit(deferred[0].length)) handle(deferred.shift()!)
      if (deferred.length > 0 && !closed) drainTimer = setTimeout(drain, Math.max(1, Math.ceil(((Math.min(deferred[0].length, maxRate * 2) - allowance) / maxRate) * 1000)))
      else wsRaw?.resume()
    }
    drainTimer = setTimeout(drain, Math.max(1, Math.ceil(((Math.min(raws.length, maxRate * 2) - allowance) / maxRate) * 1000)))
  }
  const handle = (raws: unknown[]): void => {
    for (const raw of raws) {
      const parsed = parsePeerMessage(raw)
      if (!parsed.ok) {
        control.counters.badMessages++
        if (!session) return reject(new ProtocolError(`the first message must be a valid hello (${parsed.reason})`), 4400)
        sendError(new ProtocolError(parsed.reason), false)
        if (++bad > maxBad) return reject(new ProtocolError(`more than ${maxBad} bad messages; closing`), 4400)
        continue
      }
      const m = parsed.msg
      if (!session) {
        if (m.t !== 'hello') return reject(new ProtocolError('the first message must be hello'), 4400)
        const grant = registry.check(m.token)
        if (!grant) return reject(new AuthError('bad token (or a revoked one): workers need a join token, drivers a submit token'), 4401)
        try { session = control.hello(socket, m as HelloMsg, grant, newPeerId, address) } catch (e) {
          return reject(e instanceof ColonyError ? e : new ProtocolError(String(e)), e instanceof LimitError ? 4413 : 4401)
        }
        clearTimeout(helloTimer)
        continue
      }
      try { control.handle(session, m) } catch (e) {
        if (e instanceof ColonyError) { control.counters.badMessages++; sendError(e, false) }
        else { log(`error handling '${m.t}' from ${session.id}: ${(e as Error).stack ?? e}`); sendError(new Error(`internal error handling '${m.t}'`), false) }
      }
    }
  }
  return {
    onOpen(_evt, ws) {
      socket = { send: (d) => ws.send(d as Uint8Array<ArrayBuffer>), close: (code, reason) => ws.close(code, reason) }
      wsRaw = ws.raw as { pause(): void; resume(): void } | undefined
      // A socket that never says hello holds a connection for nothing: it has a few seconds.
      helloTimer = setTimeout(() => {
        if (session || closed) return
        stats.helloTimeouts++
        reject(new ProtocolError(`no hello within ${helloTimeoutMs} ms`), 4408)
        // A client that does not answer the close handshake either is cut off.
        setTimeout(() => (wsRaw as { terminate?(): void } | undefined)?.terminate?.(), 1000).unref()
      }, helloTimeoutMs)
    },
    onMessage(evt) {
      const data = evt.data
      if (typeof data === 'string') return reject(new ProtocolError('text frames are not part of the protocol: send msgpack binary frames'), 1003)
      const bytes = new Uint8Array(data as ArrayBuffer)
      if (bytes.byteLength > limits.maxFrameBytes) {
        return reject(new LimitError('maxFrameBytes', `a frame of ${bytes.byteLength} bytes is over the ${limits.maxFrameBytes}-byte limit`), 1009)
      }
      let raws: unknown[]
      try { raws = decodeFrame(bytes) } catch (e) {
        if (FAULTS.exitOnMalformedFrame) process.exit(70)
        return reject(new ProtocolError(`malformed frame: ${(e as Error).message}`), 1007)
      }
      if (deferred.length > 0 || !admit(raws.length)) { defer(raws); return }
      handle(raws)
    },
    onClose() { closed = true; clearTimeout(drainTimer); clearTimeout(helloTimer); if (session) control.peerLost(session, 'socket closed') },
  }
}
