/**
 * `connect()`: a driver joins the grid as a peer that submits and owns work.
 * The same call works in Node and in the browser; inside a task, use the grid the
 * task was given (`main(grid)`) or `current()`.
 */
import { Grid, Peer, type DataPlaneOptions, type RtcFactory, type WebSocketFactory, type WebSocketLike } from '@colony-grid/worker-web'
import type { TaskLogMsg } from '@colony-grid/shared'

export interface ConnectOptions {
  /** The submit token (`colony start` prints it). In Node it defaults to $COLONY_TOKEN, else ./.colony/tokens.json. */
  token?: string
  /** A label for this driver's job. */
  name?: string
  /** Where task logs go; by default they are printed as `[task @ peer] line`. Pass `false` to drop them. */
  onLog?: ((m: TaskLogMsg) => void) | false
  log?: (line: string) => void
  /**
   * The time limit of this job's tasks (and actor calls) that set no `timeoutMs` of their own: past it
   * a task is stopped with a TimeoutError. Default: the coordinator's (15 minutes); 0: none.
   */
  taskTimeoutMs?: number
  /** How long to keep trying to reach the coordinator before rejecting; default 10 s. */
  timeoutMs?: number
  /** Fetch and serve large objects peer to peer (default in Node; $COLONY_P2P=0 turns it off). */
  p2p?: boolean
  /** In a browser: WebRTC for peer-to-peer objects (`browserRtc` from '@colony-grid/worker-web/browser'); without it, the coordinator relays. */
  rtc?: RtcFactory
  /**
   * How to open the connection to the coordinator, in place of a WebSocket to `url`: a driver that
   * runs in the coordinator's own process passes `coordinator.localSocket` (no socket at all).
   */
  webSocket?: WebSocketFactory
}

/** The WebSocket and, in Node, WebRTC for this platform. In a browser, WebRTC is what `rtc` gives. */
async function platform(p2p: boolean, rtc?: RtcFactory): Promise<{ webSocket: WebSocketFactory; dataPlane?: DataPlaneOptions }> {
  if (typeof process !== 'undefined' && process.versions?.node) {
    const { nodeWebSocket, nodeRtc, nodeSha256 } = await import(/* @vite-ignore */ NODE_ONLY.peer) as typeof import('@colony-grid/worker-web/node')
    return { webSocket: nodeWebSocket, dataPlane: p2p ? { rtc: nodeRtc(process.env.COLONY_RTC_BIND_ADDRESS || undefined), sha256: nodeSha256 } : undefined }
  }
  return { webSocket: (url) => new WebSocket(url) as unknown as WebSocketLike, dataPlane: p2p && rtc ? { rtc } : undefined }
}

/** Imported only in Node; by name through a variable, so page bundlers leave them out. */
const NODE_ONLY = { peer: '@colony-grid/worker-web/node', fs: 'node:fs/promises' }

function printLog(m: TaskLogMsg): void {
  for (const line of m.lines) console.log(`[${m.name} @ ${m.peer}] ${line}`)
}

/** In Node: $COLONY_TOKEN / $COLONY_SUBMIT_TOKEN, else the tokens file `colony start` wrote in ./.colony. */
async function defaultToken(): Promise<string | undefined> {
  if (typeof process === 'undefined' || !process.versions?.node) return undefined
  const fromEnv = process.env.COLONY_TOKEN ?? process.env.COLONY_SUBMIT_TOKEN
  if (fromEnv) return fromEnv
  const { readFile } = await import(/* @vite-ignore */ NODE_ONLY.fs) as typeof import('node:fs/promises')
  try { return (JSON.parse(await readFile('.colony/tokens.json', 'utf8')) as { submit?: string }).submit } catch { return undefined }
}

/** What connect() gives: the job's grid. */
export type ConnectedGrid = Grid & {
  jobId: string
  /** The coordinator the driver is on now (a failover changes it): for HTTP requests of your own, e.g. /api/jobs/<jobId>. */
  readonly coordinatorUrl: string
  /** An HTTP request to the coordinator the driver is on, with its token: `grid.request('/api/deployments')`. */
  request(path: string, init?: RequestInit): Promise<Response>
}

/**
 * Joins the grid as a driver. `url` defaults to $COLONY_URL, else http://127.0.0.1:8787. A grid with
 * standby coordinators takes them all (an array, or a comma-separated list `https://a,https://b`): the
 * driver fails over along them, and learns the rest from the coordinator that welcomes it.
 * Rejects with AuthError for a bad token, and keeps reconnecting through network blips,
 * coordinator restarts and failovers once connected.
 */
export async function connect(url?: string | readonly string[], opts: ConnectOptions = {}): Promise<ConnectedGrid> {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node
  url ??= (isNode ? process.env.COLONY_URL : undefined) ?? 'http://127.0.0.1:8787'
  const token = opts.token ?? await defaultToken()
  if (!token) throw new TypeError('connect(url, { token }) needs the submit token (colony start prints it; in Node, $COLONY_TOKEN works too)')
  const p2p = opts.p2p ?? !(isNode && process.env.COLONY_P2P === '0')
  const peer = new Peer({
    url, token, role: 'driver', kind: isNode ? 'node' : 'browser', ...await platform(p2p, opts.rtc), ...(opts.webSocket ? { webSocket: opts.webSocket } : {}),
    name: opts.name, taskTimeoutMs: opts.taskTimeoutMs, onTaskLog: opts.onLog === false ? undefined : (opts.onLog ?? printLog), log: opts.log,
  })
  await peer.start(opts.timeoutMs ?? 10_000)
  const request = (path: string, init: RequestInit = {}) => fetch(new URL(path, peer.coordinatorUrl), {
    ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` },
  })
  const grid = Object.assign(new Grid(peer.backend(), undefined, { autoFree: true }), { peer, jobId: peer.jobId!, request })
  return Object.defineProperty(grid, 'coordinatorUrl', { get: () => peer.coordinatorUrl, enumerable: true }) as typeof grid & ConnectedGrid
}

/** Inside a task: the grid of the task that is running. */
export function current(): Grid {
  const c = (globalThis as { colony?: { grid: Grid } }).colony
  if (!c) throw new Error('current() works inside a task; a driver uses the grid from connect()')
  return c.grid
}
