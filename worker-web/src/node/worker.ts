/**
 * A Node peer: `colony worker --url URL --token T [--executors N]`.
 * Job code runs in confined executor processes (executor-pool.ts, confine.ts), never in this
 * one; where they cannot be confined, the peer does not start unless told `confine: 'off'`.
 */
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Peer } from '../core/peer.js'
import { coordinatorUrls } from '../core/connection.js'
import { NodeExecutorPool } from './executor-pool.js'
import { nodeWebSocket } from './ws.js'
import { nodeRtc, nodeSha256 } from './rtc.js'
import { hasOrtNode, mlFiles, mlInstallCommand } from './ml-files.js'
import { ConfinementError, cgroupV2Writable, probeConfinement, unconfined, type Confinement } from './confine.js'
import { refuseInspectorSignal } from './inspector-guard.js'

export interface NodeWorkerOptions {
  /** The coordinator's URL, or a grid's coordinator URLs (an array or a comma-separated list) to fail over along. */
  url: string | readonly string[]
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
  /**
   * 'auto' (default): executors run in namespaces of their own (confine.ts), and the peer refuses to
   * start where that is impossible. 'off': they run unconfined, so job code could signal this
   * process and reach the network: only for a volunteer who says so (`colony worker --unconfined`).
   */
  confine?: 'auto' | 'off'
  /** The uid (and gid) executors run as when the peer runs as root; default 65534 (nobody). */
  executorUid?: number
  log?: (line: string) => void
}

/** The peer's confinement, or a ConfinementError saying plainly why there is none. */
async function confinement(opts: NodeWorkerOptions): Promise<Confinement> {
  if (opts.confine === 'off') return unconfined()
  if (opts.executorUid === 0) throw new ConfinementError('executors must not run as root (executorUid 0)')
  try {
    return await probeConfinement({ uid: opts.executorUid, readable: [join((await mlFiles()).dir, 'ml.mjs')] })
  } catch (e) {
    if (!(e instanceof ConfinementError)) throw e
    throw new ConfinementError(`job code cannot be confined on this machine: ${e.message}. Without that, job code could signal this process and reach your network; pass --unconfined to run anyway`)
  }
}

/** Said once per process (`colony up` starts several peers in one). */
let saidNoMl = false

/**
 * What this peer offers for `colony.ml`: 'tfjs-wasm' and 'ort-wasm' where the runtimes are installed
 * (they are optional peer dependencies), and 'ort-native' where onnxruntime-node is and the peer opts in.
 */
async function mlCapabilities(opts: NodeWorkerOptions, say: (line: string) => void): Promise<string[]> {
  const { missing } = await mlFiles()
  if (missing.length && !saidNoMl) {
    saidNoMl = true
    say(`ML is off on this peer: ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed, so tasks here cannot use colony.ml (it offers no tfjs or ort capability). To turn it on: ${mlInstallCommand(missing)}`)
  }
  return [
    ...(missing.length ? [] : ['tfjs-wasm', 'ort-wasm']),
    // 'ort-native': onnxruntime-node is installed here, so tasks may ask for `colony.ml.session(m, { backend: 'native' })`.
    ...(opts.nativeMl && hasOrtNode() ? ['ort-native'] : []),
  ]
}

export async function startNodeWorker(opts: NodeWorkerOptions): Promise<Peer> {
  // A bad URL in the list fails here, before an executor folder exists for nothing.
  coordinatorUrls(opts.url)
  const say = opts.log ?? ((l: string) => console.error(`[peer] ${l}`))
  refuseInspectorSignal(say)
  const executors = opts.executors ?? Math.max(1, availableParallelism() - 1)
  const confined = await confinement(opts)
  const memoryMb = opts.memoryMb ?? 1024
  const pool = new NodeExecutorPool({ executors, confinement: confined, memoryMb, nativeMl: opts.nativeMl, log: opts.log })
  const memory = confined.kind === 'none' ? 'no cap on other memory' : `${memoryMb + 1024} MB memory${cgroupV2Writable() ? ' (RLIMIT_DATA; cgroup v2 is not used)' : ''}`
  say(`executors: ${confined.summary}; ${memoryMb} MB heap, ${memory} each; folder ${pool.sandbox}`)
  const mlCaps = await mlCapabilities(opts, say)
  const downloads = new Map<string, Promise<string>>()
  // Bundles are per job: each job's executors read only their job's folder (sandbox-dir.ts).
  const bundleUrl = (hash: string, job?: string): Promise<string> => {
    if (!job) return Promise.reject(new Error(`bundle ${hash} was asked for with no job: each job's bundles live in its own folder`))
    const key = `${job}/${hash}`
    let p = downloads.get(key)
    if (!p) {
      p = (async () => {
        if (!/^[0-9a-f]{8,64}$/.test(hash)) throw new Error(`bad bundle hash ${hash}`)
        if (!pool.hasBundle(hash, job)) {
          // The coordinator gives a bundle only to a peer running its job: this peer says who it is.
          // From the coordinator the peer is on now: after a failover the first URL may be a dead one.
          const res = await fetch(new URL(`/api/bundles/${hash}`, peer.coordinatorUrl), { headers: { authorization: peer.httpAuth() } })
          if (!res.ok) throw new Error(`could not download bundle ${hash}: HTTP ${res.status}`)
          pool.writeBundle(hash, job, new Uint8Array(await res.arrayBuffer()))
        }
        return pool.bundleUrl(hash, job)
      })()
      p.catch(() => downloads.delete(key))
      downloads.set(key, p)
    }
    return p
  }
  // `peer` exists by the time a task asks for a bundle; its secret comes with the coordinator's welcome.
  const peer: Peer = new Peer({
    url: opts.url, token: opts.token, role: 'worker', kind: 'node', webSocket: nodeWebSocket,
    capabilities: ['node', 'wasm', ...mlCaps, ...(opts.capabilities ?? [])],
    resources: { cpu: executors },
    executors: pool, bundleUrl, log: opts.log, storeBytes: (opts.storeMb ?? 2048) * 1024 * 1024,
    dataPlane: opts.p2p === false ? undefined : {
      rtc: nodeRtc(opts.rtcBindAddress), relayOnly: opts.iceRelayOnly, sha256: nodeSha256, connectTimeoutMs: opts.rtcConnectTimeoutMs,
    },
  })
  try {
    return await peer.start()
  } catch (e) {
    await peer.close().catch(() => {}) // its executors and its folder go too
    throw e
  }
}
