/**
 * A peer connection from inside the coordinator's own process: the serving host's driver
 * (client/src/serving/host.ts) sends every query's call through it. Frames are the same
 * msgpack frames a WebSocket carries, handled by the same `peerSocket` (hello, tokens, rate
 * limits), but they pass in memory: no socket, no loopback, no syscall, which is most of what a
 * request through the endpoint costs over a direct call (`serve_added_latency_p50_ms`).
 * Each side hears the other in a later microtask, in order, as it would a socket's events.
 */
import type { WebSocketLike } from '@colony-grid/shared'
import type { WSContext, WSEvents } from 'hono/ws'

/** The client's end. */
export type LocalSocket = WebSocketLike

const OPEN = 1, CLOSED = 3

/**
 * The bytes of a frame as an ArrayBuffer of their own: the sender's may be a view into msgpackr's
 * buffer, which its next frame overwrites (and a Buffer's slice() is a view, not a copy).
 */
const own = (d: Uint8Array): ArrayBuffer => { const c = new Uint8Array(d.byteLength); c.set(d); return c.buffer }

export function localSocket(server: WSEvents): LocalSocket {
  let open = false, ended = false, state = 0
  const end = (code: number, reason: string) => {
    if (ended) return
    ended = true
    state = CLOSED
    queueMicrotask(() => {
      server.onClose?.({ code, reason } as CloseEvent, serverEnd)
      client.onclose?.({ code, reason })
    })
  }
  const serverEnd = {
    send: (d: string | ArrayBuffer | Uint8Array) => {
      if (ended || typeof d === 'string') return
      const data = d instanceof Uint8Array ? own(d) : d.slice(0)
      // Checked when sent, not when delivered: a frame sent just before close (a fatal error) arrives, then onclose.
      queueMicrotask(() => client.onmessage?.({ data }))
    },
    close: (code?: number, reason?: string) => end(code ?? 1000, reason ?? ''),
    raw: undefined,
    readyState: OPEN,
  } as unknown as WSContext
  const client: LocalSocket = {
    binaryType: 'arraybuffer',
    get readyState() { return state },
    bufferedAmount: 0,
    send(d) {
      if (!open || ended) return
      const data = own(d)
      queueMicrotask(() => server.onMessage?.({ data } as MessageEvent, serverEnd))
    },
    close: (code = 1000, reason = '') => end(code, reason),
    onopen: null, onmessage: null, onclose: null, onerror: null,
  }
  queueMicrotask(() => {
    if (ended) return
    server.onOpen?.(new Event('open'), serverEnd)
    if (ended) return // refused in onOpen (a standby): onclose is on its way
    open = true
    state = OPEN
    client.onopen?.({})
  })
  return client
}
