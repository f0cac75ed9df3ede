/**
 * A Node peer: `colony worker --url URL --token T [--executors N]`.
 * Job code runs in sandboxed executor processes, never in this one.
 */
import { mkdirSync, writeFileSync, renameSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname } from 'node:path'
import { Peer } from '../core/peer.js'
import { NodeExecutorPool } from './executor-pool.js'
import { nodeWebSocket } from './ws.js'
import { nodeRtc, nodeSha256 } from './rtc.js'
import { hasOrtNode } from './ml-files.js'

export interface NodeWorkerOptions {
  url: string
  token: string
  executors?: number
  memoryMb?: number
  capabilities?: string[]
  /** Move objects peer to peer over WebRTC (default); false uses the coordinator's relay only. */
  p2p?: boolean
  /** Bind WebRTC to one local address, e.g. 127.0.0.1 when every peer is on this machine. */
  rtcBindAddress?: string
  /** Use only TURN relay candidates. */
  iceRelayOnly?: boolean
  /** The cap on object bytes this peer holds; default 2048 MB. */
  storeMb?: number
  /** Executors may use onnxruntime-node (a native addon: weaker sandbox, for trusted jobs only). */
  nativeMl?: boolean
  /** How long a data channel may take to connect before the relay is used; default 5000. */
  rtcConnectTimeoutMs?: number
  log?: (line: string) => void
}

export async function startNodeWorker(opts: NodeWorkerOptions): Promise<Peer> {
  const executors = opts.executors ?? Math.max(1, availableParallelism() - 1)
  const pool = new NodeExecutorPool({ executors, memoryMb: opts.memoryMb, nativeMl: opts.nativeMl, log: opts.log })
  const downloads = new Map<string, Promise<string>>()
  const bundleUrl = (hash: string): Promise<string> => {
    let p = downloads.get(hash)
    if (!p) {
      p = (async () => {
        if (!/^[0-9a-f]{8,64}$/.test(hash)) throw new Error(`bad bundle hash ${hash}`)
        if (!pool.hasBundle(hash)) {
          const res = await fetch(new URL(`/api/bundles/${hash}`, opts.url), { headers: { authorization: `Bearer ${opts.token}` } })
          if (!res.ok) throw new Error(`could not download bundle ${hash}: HTTP ${res.status}`)
          const file = pool.bundlePath(hash)
          mkdirSync(dirname(file), { recursive: true })
          writeFileSync(`${file}.part`, Buffer.from(await res.arrayBuffer()))
          renameSync(`${file}.part`, file)
        }
        return pool.bundleUrl(hash)
      })()
      p.catch(() => downloads.delete(hash))
      downloads.set(hash, p)
    }
    return p
  }
  const peer = new Peer({
    url: opts.url, token: opts.token, role: 'worker', kind: 'node', webSocket: nodeWebSocket,
    // 'ort-native': onnxruntime-node is installed here, so tasks may ask for `colony.ml.session(m, { backend: 'native' })`.
    capabilities: ['node', 'wasm', ...(opts.nativeMl && hasOrtNode() ? ['ort-native'] : []), ...(opts.capabilities ?? [])],
    resources: { cpu: executors },
    executors: pool, bundleUrl, log: opts.log, storeBytes: (opts.storeMb ?? 2048) * 1024 * 1024,
    dataPlane: opts.p2p === false ? undefined : {
      rtc: nodeRtc(opts.rtcBindAddress), relayOnly: opts.iceRelayOnly, sha256: nodeSha256, connectTimeoutMs: opts.rtcConnectTimeoutMs,
    },
  })
  return peer.start()
}
