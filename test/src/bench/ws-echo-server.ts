/**
 * The control-plane baseline's server, run as its own process (as the coordinator is): a bare
 * WebSocket echo on the coordinator's stack (hono + @hono/node-ws + ws). Each binary frame is decoded
 * as Colony frames are (a msgpack array of messages, `decodeFrame`), every message is answered, and the
 * answers go back batched into one frame per event-loop turn (`encodeFrame`), as the coordinator sends
 * its outboxes. No store, no scheduler: this is the ceiling for messages through one process.
 * Prints `port N` once it listens.
 */
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { createNodeWebSocket } from '@hono/node-ws'
import { decodeFrame, encodeFrame } from '@colony-grid/shared'

const app = new Hono()
const { injectWebSocket, upgradeWebSocket } = createNodeWebSocket({ app })
app.get('/echo', upgradeWebSocket(() => {
  let outbox: unknown[] = []
  let queued = false
  return {
    onMessage(evt, ws) {
      const data = evt.data as ArrayBuffer | Uint8Array
      for (const m of decodeFrame(data instanceof Uint8Array ? data : new Uint8Array(data))) outbox.push(m)
      if (queued) return
      queued = true
      setImmediate(() => {
        queued = false
        const msgs = outbox
        outbox = []
        ws.send(encodeFrame(msgs) as Uint8Array<ArrayBuffer>)
      })
    },
  }
}))
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`port ${info.port}`))
injectWebSocket(server)
process.on('SIGTERM', () => { server.close(); process.exit(0) })
