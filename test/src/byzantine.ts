/**
 * A hostile peer for tests and the chaos run: it joins with the join token and speaks the
 * real protocol, but answers every task it is given with a wrong value. Given `large`, it
 * answers the tasks it names with a large wrong value (over the 64 KiB that travel inline),
 * kept here and reported by size and hash like an honest peer's large result: the hash is
 * the true SHA-256 of its wrong bytes, so only comparing with other replicas can catch it;
 * and it serves those bytes when asked.
 */
import WebSocket from 'ws'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeValue, returnId, sha256HexSync } from '@colony-grid/shared'

export interface ByzantinePeer {
  id: string
  /** The secret its welcome gave it: with its id, what lets it rejoin as itself. */
  secret: string
  tasksAnswered: number
  /** The tasks it was handed, by name. */
  ran: string[]
  /** And by id (a replica's id is `<task>~<n>`). */
  ranIds: string[]
  /** Tasks it answered with a large wrong value, by id. */
  largeIds: string[]
  close(): void
}

export interface ByzantineOptions {
  /** For a task's name, the encoded wrong value to answer with as a large result; undefined: the small inline `wrong`. */
  large?: (name: string) => Uint8Array | undefined
}

/** `rejoin`: rejoin as a peer the coordinator knew (after a restart, say), with the secret it was given. */
export async function byzantinePeer(g: { url: string; joinToken: string }, wrong: unknown = 666, rejoin?: { id: string; secret: string }, opts: ByzantineOptions = {}): Promise<ByzantinePeer> {
  const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  let ping: ReturnType<typeof setInterval> | undefined
  const held = new Map<string, Uint8Array>()
  const peer: ByzantinePeer = { id: '', secret: '', tasksAnswered: 0, ran: [], ranIds: [], largeIds: [], close: () => { clearInterval(ping); ws.close() } }
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
          peer.tasksAnswered++
          peer.ran.push(spec.name)
          peer.ranIds.push(spec.id)
          const bytes = opts.large?.(spec.name)
          if (bytes) {
            held.set(returnId(spec.id, 0), bytes)
            peer.largeIds.push(spec.id)
            out.push({ t: 'done', task: spec.id, attempt: m.attempt, results: [{ size: bytes.length, hash: sha256HexSync(bytes) }], ms: 1 })
          } else {
            const inline = encodeValue(wrong)
            out.push({ t: 'done', task: spec.id, attempt: m.attempt, results: [{ size: inline.length, inline }], ms: 1 })
          }
        } else if (m.t === 'serve') {
          // The coordinator relays what it holds: its wrong bytes, in one chunk (they are under the relay's chunk size).
          const bytes = held.get(m.id as string)
          out.push(bytes ? { t: 'chunk', req: m.req, seq: 0, data: bytes, last: true, size: bytes.length } : { t: 'serveFail', req: m.req, reason: 'not held' })
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
