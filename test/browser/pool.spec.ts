/**
 * A tab's executor pool: a tab that offers 1 CPU computes one task at a time, however many
 * the coordinator sends it (pipelining); a task waiting in get gives its slot to other work,
 * so nested tasks finish on a grid whose only worker is that tab, still one computing at once.
 * Each task reports when it computed ([s, e] from Date.now(): one tab, one clock).
 */
import { test, expect, type Page } from '@playwright/test'
import type { Grid } from '@colony-grid/client'

// Inside the test namespace Chromium offers its veth address, never loopback.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid, api } = await import('../dist/harness.js')
const { connect } = await import('@colony-grid/client')

type GridProcs = Awaited<ReturnType<typeof startGrid>>
type Span = { name: string; s: number; e: number }

/** The most spans computing at one time (one ending as another starts, in the same ms, do not overlap). */
function maxOverlap(spans: Span[]): number {
  const edges = spans.flatMap((x) => [[x.s, 1], [x.e, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let now = 0, most = 0
  for (const [, d] of edges) { now += d; most = Math.max(most, now) }
  return most
}
const show = (spans: Span[]) => {
  const t0 = Math.min(...spans.map((x) => x.s))
  return spans.map((x) => `${x.name} ${x.s - t0}..${x.e - t0}`).join(', ')
}

let g: GridProcs
let grid: Grid & { jobId: string }
let page: Page

test.describe.serial('a tab that offers 1 CPU', () => {
  test.beforeAll(async ({ browser }) => {
    // No Node peer: the tab is the grid's only worker.
    g = await startGrid({ workers: 0, memory: true })
    grid = await connect(g.url, { token: g.submitToken, onLog: false })
    page = await browser.newPage()
    page.on('pageerror', (e) => console.error(`[tab] ${e.message}`))
    await page.goto(`${g.url}/join#token=${g.joinToken}&executors=1&caps=solo`)
    await page.click('#join')
    await expect(page.locator('#s-conn')).toHaveText('connected', { timeout: 20_000 })
    const peers = (await api<{ kind: string; resources: Record<string, number> }[]>(g, '/api/peers')).body
    expect(peers.filter((p) => p.kind === 'browser').map((p) => p.resources.cpu)).toEqual([1])
  })
  test.afterAll(async () => {
    await page?.close()
    await grid?.close()
    await g?.stop()
  })

  test('computes one task at a time: 6 busy tasks of 1 s never overlap', async () => {
    const busy = grid.remote(function busy(i: number, ms: number): Span {
      const s = Date.now()
      while (Date.now() - s < ms) { /* computing */ }
      return { name: `busy ${i}`, s, e: Date.now() }
    })
    const spans = await grid.get(Array.from({ length: 6 }, (_, i) => busy.remote(i, 1000)), { timeoutMs: 60_000 })
    expect(spans).toHaveLength(6)
    expect(maxOverlap(spans), show(spans)).toBe(1)
  })

  for (const depth of [2, 3]) {
    test(`nested tasks blocked in get give up their slot: a tree of depth ${depth} finishes, one node computing at a time`, async () => {
      // Each leaf computes; each inner node waits in get for its two children, then computes.
      const tree = grid.remote(async function tree(depth: number, ms: number, path: string): Promise<Span[]> {
        const busy = (): Span => {
          const s = Date.now()
          while (Date.now() - s < ms) { /* computing */ }
          return { name: path, s, e: Date.now() }
        }
        if (depth === 0) return [busy()]
        const inner = (globalThis as unknown as { colony: { grid: Grid } }).colony.grid
        const self = inner.remote(tree)
        const kids = await inner.get([self.remote(depth - 1, ms, `${path}.0`), self.remote(depth - 1, ms, `${path}.1`)])
        return [...kids.flat(), busy()]
      })
      const spans = await grid.get(tree.remote(depth, 200, 'root'), { timeoutMs: 30_000 })
      expect(spans).toHaveLength(2 ** (depth + 1) - 1)
      // The parents resume only once no other task computes: still one at a time.
      expect(maxOverlap(spans), show(spans)).toBe(1)
    })
  }
})
