/**
 * Failover of a peer's control connection between hot-standby coordinators, against small real
 * WebSocket servers that speak just enough protocol: a leader that welcomes (and acknowledges what
 * it is told to), a standby that closes with CLOSE_STANDBY, and dead ports. The peer side is the
 * real ControlConnection (and Peer); nothing is mocked below the WebSocket.
 */
import { afterEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import {
  CLOSE_STANDBY, DEFAULT_LIMITS, DURABLE_TYPES, PROTOCOL_VERSION, decodeFrame, encodeFrame,
  type CoordinatorToPeer, type HelloMsg, type PeerToCoordinator, type WelcomeMsg,
} from '@colony-grid/shared'
import { ControlConnection, Peer, coordinatorUrls, type WebSocketLike } from '@colony-grid/worker-web'
import { freePort, startProc } from './harness.js'

/** Everything observable happens through here, so tests wait on events (with deadlines), never on sleeps. */
const bus = new EventEmitter()
bus.setMaxListeners(100)
const changed = () => bus.emit('change')

function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = () => { clearTimeout(timer); bus.off('change', check) }
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)) }, timeoutMs)
    function check() {
      const v = probe()
      if (v) { done(); resolve(v) }
    }
    bus.on('change', check)
    check()
  })
}

type Mode =
  | { kind: 'leader'; coordinators?: () => string[]; ackDurable?: number }
  | { kind: 'standby'; reason?: () => string }

/** A coordinator of a grid, as far as a peer can tell: a leader that welcomes, or a standby that sends it on. */
class FakeCoordinator {
  /** Per socket, the messages this coordinator received on it. */
  readonly sockets: PeerToCoordinator[][] = []
  private constructor(private readonly wss: WebSocketServer, readonly url: string, private readonly mode: Mode) {
    wss.on('connection', (ws) => {
      const got: PeerToCoordinator[] = []
      this.sockets.push(got)
      changed()
      if (mode.kind === 'standby') { ws.close(CLOSE_STANDBY, mode.reason?.() ?? 'standby'); return }
      let durable = 0
      ws.on('message', (data: Buffer) => {
        for (const m of decodeFrame(new Uint8Array(data)) as PeerToCoordinator[]) {
          got.push(m)
          if (m.t === 'hello') ws.send(encodeFrame([this.welcome()]))
          else if (DURABLE_TYPES.has(m.t) && ++durable <= (mode.ackDurable ?? Infinity)) {
            // A pong after the ack, in the same frame: the peer has applied the ack when it sees the pong.
            ws.send(encodeFrame([{ t: 'ack', n: durable }, { t: 'pong' }] satisfies CoordinatorToPeer[]))
          }
        }
        changed()
      })
    })
  }

  static async start(mode: Mode): Promise<FakeCoordinator> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' })
    await new Promise<void>((resolve) => wss.once('listening', resolve))
    const c = new FakeCoordinator(wss, `http://127.0.0.1:${(wss.address() as AddressInfo).port}`, mode)
    running.add(c)
    return c
  }

  private welcome(): WelcomeMsg {
    const list = this.mode.kind === 'leader' ? this.mode.coordinators?.() : undefined
    return {
      t: 'welcome', peerId: 'p_test', limits: DEFAULT_LIMITS, pingMs: 60_000, grantKey: new Uint8Array(32),
      peerSecret: 'secret', trusted: false, iceServers: [], ...(list ? { coordinators: list } : {}),
    }
  }

  /** Every message received, on every socket. */
  get received(): PeerToCoordinator[] { return this.sockets.flat() }

  /** Dies: its sockets drop at once, and its port refuses connections from now on. */
  async kill(): Promise<void> {
    if (!running.delete(this)) return
    for (const ws of this.wss.clients) ws.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }
}

const running = new Set<FakeCoordinator>()
const conns: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close()
  for (const c of [...running]) await c.kill()
})

/** An http URL where nothing listens. */
async function deadUrl(): Promise<string> { return `http://127.0.0.1:${await freePort()}` }

const wsOf = (url: string) => `${url.replace(/^http/, 'ws')}/ws`

/** The real ControlConnection, recording every connection attempt, welcome and change of coordinator. */
function connection(url: string | string[]) {
  const attempts: { url: string; at: number }[] = []
  const welcomes: string[] = []
  const changes: [string, string | undefined][] = []
  const pongs: string[] = []
  const fatal: Error[] = []
  const conn: ControlConnection = new ControlConnection({
    url,
    webSocket: (u) => {
      attempts.push({ url: u, at: performance.now() })
      changed()
      return new WebSocket(u) as unknown as WebSocketLike
    },
    makeHello: (): HelloMsg => ({ t: 'hello', v: PROTOCOL_VERSION, token: 't', kind: 'node', role: 'worker', capabilities: [], resources: {} }),
    onWelcome: () => { welcomes.push(conn.currentUrl); changed() },
    onMessage: (m) => { if (m.t === 'pong') { pongs.push(conn.currentUrl); changed() } },
    onFatal: (e) => { fatal.push(e); changed() },
    onCoordinatorChanged: (u, previous) => { changes.push([u, previous]); changed() },
  })
  conns.push(conn)
  return { conn, attempts, welcomes, changes, pongs, fatal }
}

describe('coordinator URL lists', () => {
  it('parses a comma-separated list or an array: trimmed, in the http(s) form, without duplicates', () => {
    assert.deepEqual(coordinatorUrls(' http://a.example:8787/ , wss://b.example/grid/,http://a.example:8787'),
      ['http://a.example:8787', 'https://b.example/grid'])
    assert.deepEqual(coordinatorUrls(['https://a.example', 'https://b.example/']), ['https://a.example', 'https://b.example'])
    assert.throws(() => coordinatorUrls(' , '), TypeError)
    assert.throws(() => coordinatorUrls('a.example:8787'), TypeError)
  })
})

describe('a peer with several coordinators', () => {
  it('goes on to the next URL when a standby closes with CLOSE_STANDBY, and adopts the leader\'s list', async () => {
    const standby = await FakeCoordinator.start({ kind: 'standby', reason: () => 'standby; leader unknown' })
    let leader!: FakeCoordinator
    leader = await FakeCoordinator.start({ kind: 'leader', coordinators: () => [leader.url, standby.url] })
    const c = connection(`${standby.url},${leader.url}`)
    c.conn.start()
    await until('welcomed by the leader', () => c.welcomes.length > 0)
    assert.deepEqual(c.attempts.map((a) => a.url), [wsOf(standby.url), wsOf(leader.url)])
    assert.equal(standby.sockets.length, 1)
    assert.equal(c.conn.currentUrl, leader.url)
    assert.deepEqual(c.changes, [[leader.url, undefined]])
    assert.deepEqual(c.conn.coordinators, [leader.url, standby.url], 'the welcome\'s list, the leader first')
    assert.equal(c.conn.status, 'connected')
  })

  it('goes straight to the leader a standby names, even one it was not given', async () => {
    const leader = await FakeCoordinator.start({ kind: 'leader' })
    const standby = await FakeCoordinator.start({ kind: 'standby', reason: () => `standby; leader ${leader.url}/` })
    const other = await FakeCoordinator.start({ kind: 'leader' })
    const c = connection([standby.url, other.url])
    c.conn.start()
    await until('welcomed', () => c.welcomes.length > 0)
    assert.deepEqual(c.attempts.map((a) => a.url), [wsOf(standby.url), wsOf(leader.url)])
    assert.equal(c.conn.currentUrl, leader.url)
    assert.equal(other.sockets.length, 0, 'the URL after the standby was skipped for the named leader')
  })

  it('rotates through standbys that answer without backing off', async () => {
    const standbys = await Promise.all(Array.from({ length: 6 }, () => FakeCoordinator.start({ kind: 'standby' })))
    const leader = await FakeCoordinator.start({ kind: 'leader' })
    const c = connection([...standbys.map((s) => s.url), leader.url])
    const started = performance.now()
    c.conn.start()
    await until('welcomed by the leader, the seventh URL', () => c.welcomes.length > 0)
    const ms = performance.now() - started
    assert.equal(c.attempts.length, 7, 'each standby once, then the leader')
    // Backing off per attempt, as with one URL, would take at least 75+150+300+600+1200+2250 ms.
    assert.ok(ms < 2000, `welcomed after ${ms.toFixed(0)} ms`)
  })

  it('fails over to a coordinator it learned from the welcome, and replays its unacknowledged durable messages there', async () => {
    let a!: FakeCoordinator, b!: FakeCoordinator
    a = await FakeCoordinator.start({ kind: 'leader', coordinators: () => [a.url, b.url] })
    // B commits (acknowledges) only the first durable message it gets.
    b = await FakeCoordinator.start({ kind: 'leader', coordinators: () => [b.url, a.url], ackDurable: 1 })
    const c = connection(b.url) // only B given: A comes from B's welcome
    c.conn.start()
    await until('welcomed by B', () => c.welcomes.length === 1)
    assert.deepEqual(c.conn.coordinators, [b.url, a.url])

    c.conn.send({ t: 'fn', def: { id: 'f1', kind: 'inline', name: 'one', src: '() => 1' } })
    await until('B acknowledged the fn', () => c.pongs.length === 1)
    const put: PeerToCoordinator = { t: 'put', id: 'o_1', size: 3, inline: new Uint8Array([1, 2, 3]) }
    const done: PeerToCoordinator = { t: 'done', task: 't_1', attempt: 0, results: [{ size: 1, inline: new Uint8Array([9]) }] }
    c.conn.send(put)
    c.conn.send({ t: 'log', task: 't_1', lines: ['not durable'] })
    c.conn.send(done)
    await until('B got the put, the log and the done', () => b.received.some((m) => m.t === 'done'))
    assert.equal(a.sockets.length, 0)

    await b.kill()
    await until('welcomed by A', () => c.welcomes.length === 2)
    await until('A got the replay', () => a.received.some((m) => m.t === 'done'))
    assert.equal(c.conn.currentUrl, a.url)
    assert.deepEqual(c.changes, [[b.url, undefined], [a.url, b.url]])
    assert.deepEqual(c.conn.coordinators, [a.url, b.url], 'A\'s list now')
    // Hello, then exactly what B did not commit, in order: not the acknowledged fn, not the log.
    assert.equal(a.sockets.length, 1)
    assert.deepEqual(a.sockets[0].map((m) => m.t), ['hello', 'put', 'done'])
    assert.deepEqual(a.sockets[0][1], put)
    assert.deepEqual(a.sockets[0][2], done)
    // A acknowledges them: nothing is replayed twice when A goes too.
    await until('A acknowledged both', () => c.pongs.filter((u) => u === a.url).length === 2)
  })

  it('backs off after each full cycle of URLs without a welcome, and does not spin', async () => {
    const standby = await FakeCoordinator.start({ kind: 'standby' })
    const urls = [await deadUrl(), standby.url, await deadUrl()]
    const c = connection(urls)
    c.conn.start()
    await until('ten attempts', () => c.attempts.length >= 10, 15_000)
    const t = c.attempts.map((a) => a.at)
    // In order around the list: dead, standby, dead, dead, ...
    assert.deepEqual(c.attempts.slice(0, 10).map((a) => a.url), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0].map((i) => wsOf(urls[i])))
    // A pause between cycles, twice as long each time (100 ms, 200, 400, ±25% jitter) ...
    for (const [k, i] of [3, 6, 9].entries()) {
      const gap = t[i] - t[i - 1]
      assert.ok(gap >= 100 * 2 ** k * 0.75 - 2, `pause before cycle ${k + 2}: ${gap.toFixed(0)} ms`)
    }
    // ... and none within a cycle: each next URL comes after a jitter of at most 50 ms (and the failed attempt).
    assert.ok(t[2] - t[0] < 600, `the first cycle took ${(t[2] - t[0]).toFixed(0)} ms`)
    // Attempts in the first second: four cycles at most (a spinning peer would make hundreds).
    const inFirstSecond = t.filter((x) => x - t[0] < 1000).length
    assert.ok(inFirstSecond >= 6 && inFirstSecond <= 12, `${inFirstSecond} attempts in the first second`)
    assert.equal(c.welcomes.length, 0)
    assert.equal(c.conn.status, 'connecting')
    assert.deepEqual(c.fatal, [])
  })

  it('Peer.coordinatorUrl follows a failover, for the HTTP requests peers make (bundles, ML files)', async () => {
    let a!: FakeCoordinator, b!: FakeCoordinator
    a = await FakeCoordinator.start({ kind: 'leader', coordinators: () => [a.url, b.url] })
    b = await FakeCoordinator.start({ kind: 'leader', coordinators: () => [b.url, a.url] })
    const said: string[] = []
    const changes: string[] = []
    const peer = new Peer({
      url: `${b.url}, ${a.url}`, token: 't', role: 'driver', kind: 'node',
      webSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
      onCoordinatorChanged: (u) => { changes.push(u); changed() },
      log: (l) => { said.push(l); changed() },
    })
    conns.push(peer)
    await peer.start(5000)
    assert.equal(peer.coordinatorUrl, b.url)
    await b.kill()
    await until('on A', () => changes.length === 2)
    assert.equal(peer.coordinatorUrl, a.url)
    assert.deepEqual(changes, [b.url, a.url])
    assert.ok(said.includes(`now on coordinator ${a.url} (was ${b.url})`), said.join('\n'))
  })
})

describe('the CLI\'s HTTP commands with several coordinators', () => {
  let servers: Server[] = []
  afterEach(async () => {
    for (const s of servers) await new Promise((r) => s.close(r))
    servers = []
  })
  async function http(handler: (path: string) => [number, unknown]): Promise<string> {
    const s = createServer((req, res) => {
      const [status, body] = handler(req.url ?? '/')
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
    servers.push(s)
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
  }

  it('asks each URL in turn: past a dead one and a standby (HTTP 503), to the leader the standby names', async () => {
    const asked: string[] = []
    const leader = await http((path) => { asked.push(path); return [200, path.startsWith('/api/jobs') ? { items: [], total: 0, truncated: false } : []] })
    const standby = await http(() => [503, { standby: true, leader }])
    const status = startProc(['status', '--url', `${await deadUrl()},${standby}`, '--token', 't'])
    const exit = await status.waitExit(20_000)
    assert.equal(exit.code, 0, status.output())
    assert.match(status.output(), new RegExp(`^${leader.replace(/[.]/g, '\\.')}: ready\\n +peers: +0 workers, 0 drivers`, 'm'))
    assert.deepEqual(asked.sort(), ['/api/jobs?limit=10', '/api/peers', '/api/summary'])
  })
})
