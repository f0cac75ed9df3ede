/**
 * The operator's dashboard at /dashboard, in real Chromium against a real coordinator with 1,000
 * simulated peers (test/src/sim) and a job of 100,000 tasks: it shows the peers a page at a time,
 * the job with its counts, and the charts, while every response it reads stays small and it never
 * asks for the job's tasks. A peer quarantined for wrong answers comes first, and its Release button
 * lets it work again. A submit token that is not the operator's is refused with a clear message.
 */
import { test, expect, type Page, type Response } from '@playwright/test'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { api, startGrid, until } = await import('../dist/harness.js')
const { startSimulatedPeers } = await import('../dist/sim/index.js')
const { byzantinePeer } = await import('../dist/byzantine.js')
const { connect } = await import('@colony-grid/client')
type GridProcs = Awaited<ReturnType<typeof startGrid>>
type Sim = Awaited<ReturnType<typeof startSimulatedPeers>>
type Grid = Awaited<ReturnType<typeof connect>>

const PEERS = 1000
const TASKS = 100_000
/** What one response the dashboard reads may weigh: /api/peers with 1,000 peers is the largest. */
const MAX_RESPONSE_BYTES = 512 * 1024

let g: GridProcs
let sim: Sim
let grid: Grid
let jobId: string

/** Every /api response a page reads, with its size. */
function recordApi(page: Page): { url: string; bytes: number }[] {
  const seen: { url: string; bytes: number }[] = []
  page.on('response', (res: Response) => {
    if (!new URL(res.url()).pathname.startsWith('/api/')) return
    void res.body().then((b) => { seen.push({ url: res.url(), bytes: b.byteLength }) }, () => {})
  })
  return seen
}

/** From navigation to a full page of peers in the table, in ms. */
async function timeToPeers(page: Page, go: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now()
  await go()
  await expect(page.locator('#peers tr[data-peer]')).toHaveCount(50, { timeout: 20_000 })
  return Date.now() - t0
}

test.describe.serial('the operator dashboard', () => {
  test.beforeAll(async () => {
    test.setTimeout(120_000)
    g = await startGrid({ workers: 0, memory: true })
    // Each simulated task takes 2 s, so the job keeps running (and the charts move) while the page is looked at.
    sim = await startSimulatedPeers({ url: g.url, joinToken: g.joinToken, peers: PEERS, taskMs: 2000, kinds: ['node', 'browser'] })
    await sim.joined
    grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    jobId = grid.jobId
    const echo = grid.remote((x: number) => x, { capabilities: ['sim'] })
    for (let i = 0; i < TASKS; i++) echo.remote(i)
    await until(async () => {
      const job = (await api<{ tasks: Record<string, number> }>(g, `/api/jobs/${jobId}`)).body
      return Object.values(job.tasks ?? {}).reduce((a, b) => a + b, 0) >= TASKS
    }, 60_000, `the coordinator to hold the ${TASKS} tasks`)
  })
  test.afterAll(async () => {
    await grid?.close().catch(() => {})
    await sim?.stop()
    await g?.stop()
  })

  test('shows 1,000 peers a page at a time, the 100,000-task job and the charts, reading only small responses', async ({ browser }) => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1200 } })
    page.on('pageerror', (e) => console.error(`[dashboard] ${e.message}`))
    const responses = recordApi(page)
    const first = await timeToPeers(page, () => page.goto(`${g.url}/dashboard#token=${g.submitToken}`))

    // Peers: a page of 50 of them, the pager counting them all, paging and filtering on the page.
    const pager = page.locator('#peers .pager-text')
    await expect(pager).toHaveText(/^1–50 of 1,00\d$/)
    await expect(page.locator('[data-tile="peers"] .tile-detail')).toContainText('1,000 worker')
    await expect(page.locator('[data-tile="peers"] .tile-detail')).toContainText('500 browser')
    await page.click('#peers button:has-text("Next")')
    await expect(pager).toHaveText(/^51–100 of/)
    await page.fill('#peers input.filter', 'browser')
    await expect(pager).toHaveText('1–50 of 500 matching of 1,001')
    await page.fill('#peers input.filter', 'no-such-peer')
    await expect(page.locator('#peers tr[data-peer]')).toHaveCount(0)
    await expect(page.locator('#peers .empty')).toHaveText('No peer matches the filter.')
    await page.fill('#peers input.filter', '')

    // The job: its counts, without its tasks.
    const job = page.locator(`#jobs tr[data-job="${jobId}"]`)
    await expect(job).toContainText(`of ${TASKS.toLocaleString('en')}`)
    await expect(job.locator('.state')).toHaveText('running')
    await expect(page.locator('#jobs .toolbar')).toContainText('newest 1 of 1 jobs')

    // The charts: two uPlot canvases, fed by the coordinator's history, which counts the peers.
    await expect(page.locator('.charts .uplot canvas')).toHaveCount(2)
    const history = await until(async () => {
      const h = (await api<{ at: number[]; peers: number[]; running: number[] }>(g, '/api/history')).body
      return h.at.length >= 2 && h.peers.at(-1)! >= PEERS && h
    }, 10_000, 'samples with the 1,000 peers')
    expect(history.running.at(-1)).toBeGreaterThan(0)
    await expect(page.locator('[data-tile="queued"] .tile-value')).not.toHaveText('0')

    // A page refresh: as quick as the first load.
    const again = await timeToPeers(page, () => page.reload())
    console.log(`[dashboard] ${PEERS} peers, a ${TASKS}-task job: navigation to the peers table ${first} ms, after a reload ${again} ms`)
    expect(first).toBeLessThan(5000)
    expect(again).toBeLessThan(5000)

    // Every response was small, and none was the job's task list.
    await expect.poll(() => responses.some((r) => new URL(r.url).pathname === '/api/peers')).toBe(true)
    const biggest = [...responses].sort((a, b) => b.bytes - a.bytes)[0]
    console.log(`[dashboard] ${responses.length} API responses, the biggest ${biggest.bytes} bytes: ${biggest.url}`)
    for (const r of responses) expect(r.bytes, r.url).toBeLessThan(MAX_RESPONSE_BYTES)
    expect(responses.filter((r) => /\/tasks/.test(new URL(r.url).pathname))).toEqual([])
    await page.close()
  })

  test('shows a peer quarantined for wrong answers first, and its Release button lets it work again', async ({ browser }) => {
    // A grid of its own: two honest Node workers and one that answers every task wrong, found out by replicas.
    const small = await startGrid({ workers: 2, executors: 1, memory: true })
    let evil: Awaited<ReturnType<typeof byzantinePeer>> | undefined
    try {
      evil = await byzantinePeer(small)
      const driver = await connect(small.url, { token: small.submitToken, onLog: false, log: () => {} })
      try {
        const double = driver.remote((x: number) => x * 2, { replicas: 2 })
        await driver.get(Array.from({ length: 30 }, (_, i) => double.remote(i)), { timeoutMs: 60_000 })
      } finally { await driver.close() }
      const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } })
      await page.goto(`${small.url}/dashboard#token=${small.submitToken}`)
      const first = page.locator('#peers tr[data-peer]').first()
      await expect(first).toHaveAttribute('data-peer', evil.id)
      await expect(first.locator('.state')).toHaveText('quarantined')
      await expect(page.locator('[data-tile="quarantined"]')).toHaveClass(/alert/)
      await expect(page.locator('[data-tile="quarantined"] .tile-value')).toHaveText('1')

      await first.locator('button', { hasText: 'Release' }).click()
      const row = page.locator(`#peers tr[data-peer="${evil.id}"]`)
      await expect(row.locator('.state')).toHaveText('ok')
      await expect(row.locator('button', { hasText: 'Release' })).toBeHidden()
      await expect(page.locator('[data-tile="quarantined"] .tile-value')).toHaveText('0')
      const listed = (await api<{ id: string; quarantined: boolean }[]>(small, '/api/peers')).body
      expect(listed.find((p) => p.id === evil!.id)?.quarantined).toBe(false)
      await page.close()
    } finally {
      evil?.close()
      await small.stop()
    }
  })

  test('refuses a submit token that is not the operator\'s, and a wrong one, with a message that says which token it needs', async ({ browser }) => {
    const made = await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'a user' }) })
    expect(made.status).toBe(201)
    const page = await browser.newPage()
    await page.goto(`${g.url}/dashboard#token=${made.body.token}`)
    await expect(page.locator('#gate')).toBeVisible()
    await expect(page.locator('#gate-message')).toContainText('operator')
    await expect(page.locator('#board')).toBeHidden()

    await page.fill('#token', 'not-a-token')
    await page.press('#token', 'Enter')
    await expect(page.locator('#gate-message')).toContainText('missing, wrong or revoked token')

    // The right token opens it from the same page.
    await page.fill('#token', g.submitToken)
    await page.press('#token', 'Enter')
    await expect(page.locator('#board')).toBeVisible()
    await expect(page.locator('#gate')).toBeHidden()
    await expect(page.locator('#tokens tr[data-token]')).toHaveCount(4)
    await page.close()
  })
})
