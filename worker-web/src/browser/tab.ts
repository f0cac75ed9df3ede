/**
 * A browser tab as a worker of the grid: the same peer runtime as Node peers, with
 * Web Worker executors, the browser's WebRTC, and job bundles handed to executors
 * as blob URLs (job code never sees the token).
 */
import { Peer } from '../core/peer.js'
import { coordinatorUrls, type WebSocketLike } from '../core/connection.js'
import { BrowserExecutorPool } from './worker-pool.js'
import { browserRtc } from './rtc.js'

export interface TabOptions {
  /** The coordinator's URL, or a grid's coordinator URLs (an array or a comma-separated list); by default the page's own origin. */
  url?: string | readonly string[]
  token: string
  executors: number
  capabilities?: string[]
  /** The tfjs backend and onnxruntime-web provider tasks get by default (the probe's fastest). */
  tfjsBackend?: string
  ortBackend?: string
  log?: (line: string) => void
}

export interface TabPeer {
  peer: Peer
  pool: BrowserExecutorPool
  pause(paused: boolean): void
  leave(): Promise<void>
}

export async function joinAsTab(opts: TabOptions): Promise<TabPeer> {
  const url = opts.url ?? location.origin
  // The ML runtimes' files come from the coordinator the tab is on: the first URL until one welcomes it, another after a failover.
  const mlAssets = (coordinator: string) => new URL('/ml/', coordinator).href
  const pool = new BrowserExecutorPool(opts.executors, { tfjsBackend: opts.tfjsBackend ?? 'wasm', ortBackend: opts.ortBackend ?? 'wasm', assetsBase: mlAssets(coordinatorUrls(url)[0]) }, opts.log)
  // Per job: the coordinator hands a bundle only to a peer running that job's tasks, so one job's
  // tasks never get a module URL by way of another's download.
  const bundles = new Map<string, Promise<string>>()
  const bundleUrl = (hash: string, job: string): Promise<string> => {
    const key = `${job} ${hash}`
    let p = bundles.get(key)
    if (!p) {
      // From the coordinator the tab is on now, which a failover changes.
      p = fetch(new URL(`/api/bundles/${hash}`, peer.coordinatorUrl), { headers: { authorization: peer.httpAuth() } }).then(async (res) => {
        if (!res.ok) throw new Error(`could not download bundle ${hash}: HTTP ${res.status}`)
        return URL.createObjectURL(new Blob([await res.arrayBuffer()], { type: 'text/javascript' }))
      })
      p.catch(() => bundles.delete(key))
      bundles.set(key, p)
    }
    return p
  }
  const peer = new Peer({
    url, token: opts.token, role: 'worker', kind: 'browser',
    webSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
    capabilities: [...new Set(['browser', ...(opts.capabilities ?? [])])],
    resources: { cpu: opts.executors },
    executors: pool, bundleUrl, log: opts.log,
    dataPlane: { rtc: browserRtc },
    onCoordinatorChanged: (coordinator) => pool.setMlAssetsBase(mlAssets(coordinator)),
  })
  await peer.start(15_000)
  return {
    peer, pool,
    pause: (paused) => peer.conn.send({ t: 'pause', paused }),
    leave: () => peer.close(),
  }
}
