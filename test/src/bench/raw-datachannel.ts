/**
 * The data-channel baseline: the same bytes, 64 KiB messages, over a bare simple-peer
 * channel on node-datachannel, between two processes (as Colony's peers are).
 * Run as `node raw-datachannel.js send|recv BYTES [CONFIG]`; signalling goes through the parent over IPC.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { nodeRtc } from '@colony-grid/worker-web/node'

/** Where each side runs, and how it connects: by default both on loopback, host candidates only. */
export interface RawChannelSetup {
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[]
  relayOnly?: boolean
  /** ICE bound to this address; default 127.0.0.1 (loopback), none where `spawn` puts the sides on other machines. */
  bindAddress?: string | null
  /** Starts one side (node with these arguments and an IPC channel), e.g. on a machine of a test network. */
  spawn?: (side: 'send' | 'recv', nodeArgs: string[]) => ChildProcess
}

const [role, bytesArg, configArg] = process.argv.slice(2)

if (role === 'send' || role === 'recv') {
  const total = Number(bytesArg)
  const config = JSON.parse(configArg ?? '{}') as RawChannelSetup
  const bind = config.bindAddress === undefined ? '127.0.0.1' : config.bindAddress ?? undefined
  const peer = nodeRtc(bind)({ initiator: role === 'send', iceServers: config.iceServers ?? [], relayOnly: !!config.relayOnly })
  peer.on('signal', ((d: unknown) => process.send!({ signal: d })) as never)
  peer.on('error', ((e: Error) => { process.send!({ error: e.message }) }) as never)
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
export async function rawDataChannelMiBps(bytes: number, setup: RawChannelSetup = {}): Promise<number> {
  const self = fileURLToPath(import.meta.url)
  const { spawn: start, ...config } = setup
  const args = (side: 'send' | 'recv') => [self, side, String(bytes), JSON.stringify(config)]
  const launch = (side: 'send' | 'recv') => (start ? start(side, args(side)) : fork(args(side)[0], args(side).slice(1)))
  const send = launch('send')
  const recv = launch('recv')
  try {
    send.on('message', (m: { signal?: unknown }) => { if (m.signal) recv.send(m) })
    recv.on('message', (m: { signal?: unknown }) => { if (m.signal) send.send(m) })
    const failed = new Promise<never>((_, reject) => {
      for (const p of [send, recv]) {
        p.on('message', (m: { error?: string }) => { if (m.error) reject(new Error(`the bare data channel failed: ${m.error}`)) })
        p.once('exit', (c) => reject(new Error(`a side of the bare data channel exited (${c})`)))
      }
    })
    const started = new Promise<number>((r) => send.on('message', (m: { start?: boolean }) => { if (m.start) r(performance.now()) }))
    const done = new Promise<number>((r) => recv.on('message', (m: { done?: boolean }) => { if (m.done) r(performance.now()) }))
    const t0 = await Promise.race([started, failed])
    const t1 = await Promise.race([done, failed])
    return bytes / (1 << 20) / ((t1 - t0) / 1000)
  } finally {
    send.kill()
    recv.kill()
  }
}

/** `spawn` for RawChannelSetup: node with an IPC channel, wrapped by `wrap` (e.g. `ip netns exec NS`). */
export function spawnWithIpc(wrap: string[]): (side: 'send' | 'recv', nodeArgs: string[]) => ChildProcess {
  return (_side, nodeArgs) => spawn(wrap[0], [...wrap.slice(1), process.execPath, ...nodeArgs], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}
