/** Browser tabs as workers: join, share work with a Node peer, move objects tab to tab, host actors, vanish. */
import { test, expect, type Page } from '@playwright/test'
import { openTab as open } from './tab.js'
import type { Grid, ObjectRef } from '@colony-grid/client'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid, api, metric } = await import('../dist/harness.js')
const { connect } = await import('@colony-grid/client')

type GridProcs = Awaited<ReturnType<typeof startGrid>>
type PeerRow = { id: string; kind: string; role: string; capabilities: string[]; tasksDone: number; bytesHeld: number }

let g: GridProcs
let grid: Grid & { jobId: string }
const tabs: { page: Page; id: string }[] = []

const openTab = (browser: Parameters<typeof open>[0], caps: string) => open(browser, g, caps)
const peers = async () => (await api<PeerRow[]>(g, '/api/peers')).body

test.describe.serial('tabs as workers', () => {
  test.beforeAll(async ({ browser }) => {
    g = await startGrid({ workers: 1, executors: 1, memory: true })
    grid = await connect(g.url, { token: g.submitToken, onLog: false })
    for (const caps of ['t1', 't2', 't3']) tabs.push(await openTab(browser, caps))
  })
  test.afterAll(async () => {
    // Pages opened with browser.newPage() outlive the spec, and a tab keeps reconnecting: close them.
    for (const t of tabs) await t.page.close().catch(() => {})
    await grid?.close()
    await g?.stop()
  })

  test('3 tabs and 1 Node peer join; /api/peers lists the tabs with their capabilities', async () => {
    const list = await peers()
    const browsers = list.filter((p) => p.kind === 'browser')
    expect(browsers.map((p) => p.id).sort()).toEqual(tabs.map((t) => t.id).sort())
    for (const b of browsers) expect(b.capabilities).toEqual(expect.arrayContaining(['browser', 'wasm']))
    expect(list.filter((p) => p.kind === 'node' && p.role === 'worker')).toHaveLength(1)
  })

  test('a 300-task job spreads across all 4 peers and gives the right result', async () => {
    const before = await peers()
    const work = grid.remote((i: number) => new Promise<number>((r) => setTimeout(() => r(i * 2), 20)))
    const refs = Array.from({ length: 300 }, (_, i) => work.remote(i))
    await grid.wait(refs, { numReturns: 100, timeoutMs: 60_000 })
    await tabs[0].page.screenshot({ path: 'test-results/browser/join-page-working.png' })
    const values = await grid.get(refs, { timeoutMs: 120_000 })
    expect(values.reduce((a, b) => a + b, 0)).toBe(300 * 299)
    const after = await peers()
    for (const p of after.filter((x) => x.role === 'worker')) {
      const done = p.tasksDone - (before.find((b) => b.id === p.id)?.tasksDone ?? 0)
      expect(done, `peer ${p.id} (${p.kind}) ran some of the job`).toBeGreaterThan(0)
    }
  })

  test('an object made in one tab is consumed in another over WebRTC, with 0 bytes relayed', async () => {
    const relayedBefore = await metric(g, 'colony_relayed_bytes_total')
    const make = grid.remote(function make(n: number) { return new Uint8Array(n).fill(7) }, { capabilities: ['t1'] })
    const sum = grid.remote(function sum(b: Uint8Array) { let s = 0; for (let i = 0; i < b.length; i += 1024) s += b[i]; return s }, { capabilities: ['t2'] })
    const n = 8 * 1024 * 1024
    expect(await grid.get(sum.remote(make.remote(n)), { timeoutMs: 60_000 })).toBe(7 * (n / 1024))
    expect(await metric(g, 'colony_relayed_bytes_total')).toBe(relayedBefore)
  })

  test('an actor lives in a tab, and its calls run in order', async () => {
    const Log = grid.remote(class Log { xs: number[] = []; add(x: number) { this.xs.push(x); return this.xs.length } all() { return this.xs } }, { capabilities: ['t3'] })
    const log = Log.remote()
    const lens = await grid.get(Array.from({ length: 50 }, (_, i) => log.add.remote(i)))
    expect(lens).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    expect(await grid.get(log.all.remote())).toEqual(Array.from({ length: 50 }, (_, i) => i))
    const tasks = (await api<{ items: { name: string; peer?: string }[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
    expect(tasks.find((t) => t.name === 'Log')!.peer).toBe(tabs[2].id)
  })

  test('job code in a tab runs in a worker: no DOM, no token; past its timeout it is ended and the worker replaced', async () => {
    const look = grid.remote(function look() {
      const g = globalThis as unknown as Record<string, unknown>
      return { document: typeof g.document, window: typeof g.window, where: String((g.location as { href?: string })?.href), keys: Object.keys(g).join(',') }
    }, { capabilities: ['t3'] })
    const seen = await grid.get(look.remote())
    expect(seen.document).toBe('undefined')
    expect(seen.window).toBe('undefined')
    expect(JSON.stringify(seen)).not.toContain(g.joinToken)
    const spin = grid.remote(function spin() { for (;;) { /* never returns */ } }, { capabilities: ['t3'], timeoutMs: 500 })
    await expect(grid.get(spin.remote(), { timeoutMs: 30_000 })).rejects.toThrow(/time limit of 500 ms/)
    expect(await grid.get(look.remote())).toMatchObject({ document: 'undefined' })
  })

  test('job code in a tab may talk only to the coordinator: a request to another origin is refused', async () => {
    const probe = grid.remote(async function probe(self: string, other: string) {
      const same = (await fetch(`${self}/healthz`)).ok
      let otherOrigin = 'reached'
      try { await fetch(`${other}/healthz`, { mode: 'no-cors' }) } catch (e) { otherOrigin = `refused: ${(e as Error).message}` }
      const socket = await new Promise<string>((resolve) => {
        try {
          const ws = new WebSocket(other.replace('http', 'ws') + '/ws')
          ws.onopen = () => { ws.close(); resolve('opened') }
          ws.onerror = () => resolve('refused: error event')
        } catch (e) { resolve(`refused: ${(e as Error).name}`) }
      })
      return { same, otherOrigin, socket }
    }, { capabilities: ['t3'] })
    // The same coordinator under another name is another origin: without the policy, both would reach it.
    const seen = await grid.get(probe.remote(g.url, g.url.replace('127.0.0.1', 'localhost')))
    expect(seen.same).toBe(true)
    expect(seen.otherOrigin).toMatch(/^refused/)
    expect(seen.socket).toMatch(/^refused/)
  })

  test('a tab reconnects after a network blip with the same id, still holding its objects', async () => {
    const make = grid.remote(function make(n: number) { return new Uint8Array(n).fill(9) }, { capabilities: ['t1'] })
    const sum = grid.remote(function sum(b: Uint8Array) { let s = 0; for (let i = 0; i < b.length; i += 1024) s += b[i]; return s }, { capabilities: ['t2'] })
    const n = 4 * 1024 * 1024
    const made = make.remote(n)
    await grid.wait([made])
    const relayedBefore = await metric(g, 'colony_relayed_bytes_total')
    // The blip: the tab's socket drops, as on a flaky network; the page stays.
    type Conn = { ws?: WebSocket; status: string }
    type TabWindow = { colonyTab: { peer: { peerId: string; conn: Conn } }; blipped?: WebSocket }
    await tabs[0].page.evaluate(() => {
      const w = window as unknown as TabWindow
      w.blipped = w.colonyTab.peer.conn.ws
      w.blipped!.close()
    })
    // Reconnected: welcomed on a new socket. ('#s-conn' and the status say 'connected' until the old socket's
    // onclose, so they cannot tell a reconnect from a blip not noticed yet.)
    await tabs[0].page.waitForFunction(() => {
      const w = window as unknown as TabWindow
      const conn = w.colonyTab.peer.conn
      return !!conn.ws && conn.ws !== w.blipped && conn.status === 'connected'
    }, null, { timeout: 20_000 })
    expect(await tabs[0].page.evaluate(() => (window as unknown as TabWindow).colonyTab.peer.peerId)).toBe(tabs[0].id)
    await expect(tabs[0].page.locator('#s-peer')).toHaveText(tabs[0].id)
    await expect(tabs[0].page.locator('#s-conn')).toHaveText('connected')
    // The coordinator has it back under the same id, holding the object it made.
    expect((await peers()).find((p) => p.id === tabs[0].id)?.bytesHeld ?? 0).toBeGreaterThanOrEqual(n)
    expect(await grid.get(sum.remote(made), { timeoutMs: 60_000 })).toBe(9 * (n / 1024))
    expect(await metric(g, 'colony_relayed_bytes_total')).toBe(relayedBefore)
  })

  test('a tab closed mid-job: its tasks run elsewhere and the result is right', async ({ browser }) => {
    const doomed = await openTab(browser, 'doomed')
    const work = grid.remote((i: number) => new Promise<number>((r) => setTimeout(() => r(i + 1), 40)))
    const refs: ObjectRef<number>[] = Array.from({ length: 160 }, (_, i) => work.remote(i))
    await grid.wait(refs, { numReturns: 30, timeoutMs: 60_000 })
    await doomed.page.close()
    const values = await grid.get(refs, { timeoutMs: 120_000 })
    expect(values.reduce((a, b) => a + b, 0)).toBe((160 * 161) / 2)
    expect((await peers()).some((p) => p.id === doomed.id)).toBe(false)
  })
})
