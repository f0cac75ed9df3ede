/**
 * A hostile peer for tests and the chaos run: it joins with the join token and speaks the
 * real protocol, but answers every task it is given with a wrong value.
 */
import WebSocket from 'ws'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeValue } from '@colony-grid/shared'

export interface ByzantinePeer {
  id: string
  /** The secret its welcome gave it: with its id, what lets it rejoin as itself. */
  secret: string
  tasksAnswered: number
  /** The tasks it was handed, by name. */
  ran: string[]
  close(): void
}

/** `rejoin`: rejoin as a peer the coordinator knew (after a restart, say), with the secret it was given. */
export async function byzantinePeer(g: { url: string; joinToken: string }, wrong: unknown = 666, rejoin?: { id: string; secret: string }): Promise<ByzantinePeer> {
  const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  let ping: ReturnType<typeof setInterval> | undefined
  const peer: ByzantinePeer = { id: '', secret: '', tasksAnswered: 0, ran: [], close: () => { clearInterval(ping); ws.close() } }
  const welcomed = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      const out: unknown[] = []
      for (const m of decodeFrame(data) as Record<string, unknown>[]) {
        if (m.t === 'welcome') {
          peer.id = m.peerId as string
          peer.secret = m.peerSecret as string
          ping = setInterval(() => ws.send(encodeFrame([{ t: 'ping' }])), m.pingMs as number)
          resolve()
        } else if (m.t === 'run') {
          const spec = m.spec as { id: string; name: string }
          const inline = encodeValue(wrong)
          peer.tasksAnswered++
          peer.ran.push(spec.name)
          out.push({ t: 'done', task: spec.id, attempt: m.attempt, results: [{ size: inline.length, inline }], ms: 1 })
        }
      }
      if (out.length) ws.send(encodeFrame(out))
    })
  })
  ws.send(encodeFrame([{
    t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, kind: 'node', role: 'worker', capabilities: ['node', 'wasm'], resources: { cpu: 2 },
    ...(rejoin ? { peerId: rejoin.id, peerSecret: rejoin.secret } : {}),
  }]))
  await welcomed
  return peer
}
