/**
 * The data-channel baseline: the same bytes, 64 KiB messages, over a bare simple-peer
 * channel on node-datachannel, between two processes (as Colony's peers are).
 * Run as `node raw-datachannel.js send|recv BYTES`; signalling goes through the parent over IPC.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { nodeRtc } from '@colony-grid/worker-web/node'

const [role, bytesArg] = process.argv.slice(2)

if (role === 'send' || role === 'recv') {
  const total = Number(bytesArg)
  const peer = nodeRtc('127.0.0.1')({ initiator: role === 'send', iceServers: [], relayOnly: false })
  peer.on('signal', ((d: unknown) => process.send!({ signal: d })) as never)
  process.on('message', (m: { signal?: unknown }) => { if (m.signal) peer.signal(m.signal) })
  peer.on('connect', (async () => {
    if (role === 'recv') return
    const ch = peer._channel!
    ch.bufferedAmountLowThreshold = 1 << 20
    const chunk = new Uint8Array(64 * 1024)
    process.send!({ start: true })
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      if (ch.bufferedAmount > 4 << 20) await new Promise<void>((r) => { const f = () => { ch.removeEventListener('bufferedamountlow', f); r() }; ch.addEventListener('bufferedamountlow', f) })
      peer.send(chunk)
    }
  }) as never)
  let got = 0
  peer.on('data', ((d: Uint8Array) => { got += d.byteLength; if (got >= total) process.send!({ done: true }) }) as never)
}

/** MiB/s for `bytes` from one process to another over a bare data channel. */
export async function rawDataChannelMiBps(bytes: number): Promise<number> {
  const self = fileURLToPath(import.meta.url)
  const send = fork(self, ['send', String(bytes)])
  const recv = fork(self, ['recv', String(bytes)])
  try {
    send.on('message', (m: { signal?: unknown }) => { if (m.signal) recv.send(m) })
    recv.on('message', (m: { signal?: unknown }) => { if (m.signal) send.send(m) })
    const started = new Promise<number>((r) => send.on('message', (m: { start?: boolean }) => { if (m.start) r(performance.now()) }))
    const done = new Promise<number>((r) => recv.on('message', (m: { done?: boolean }) => { if (m.done) r(performance.now()) }))
    const t0 = await started
    const t1 = await done
    return bytes / (1 << 20) / ((t1 - t0) / 1000)
  } finally {
    send.kill()
    recv.kill()
  }
}
