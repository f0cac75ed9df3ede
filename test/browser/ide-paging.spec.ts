/**
 * The IDE with a job of 100,000 tasks on the grid, in real Chromium: its cluster panel shows the
 * job (its 100,000 tasks, a window of its timeline, a page of its objects) from small requests
 * only. Every /api/ answer the page gets is measured, and no request for tasks goes without a
 * small limit: the panel never fetches the whole task list.
 */
import { test, expect, type Page, type Response } from '@playwright/test'
import type { Grid, ObjectRef } from '@colony-grid/client'

process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid, until, api } = await import('../dist/harness.js')
const { connect } = await import('@colony-grid/client')
type GridProcs = Awaited<ReturnType<typeof startGrid>>

const N = 100_000
/** The largest /api/ answer allowed: the whole task list of this job would be about 10 MB. */
const MAX_ANSWER_BYTES = 256 * 1024
/** The most tasks one request may ask for. */
const MAX_TASKS_ASKED = 1000

let g: GridProcs
let driver: Grid & { jobId: string }
let refs: ObjectRef<unknown>[] = []
let page: Page
const answers: Promise<{ url: string; bytes: number }>[] = []

test.describe.serial('the IDE with a 100,000-task job', () => {
  test.beforeAll(async ({ browser }) => {
    test.setTimeout(180_000)
    g = await startGrid({ workers: 0, memory: true })
    driver = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {}, name: 'hundred-thousand' })
    const noop = driver.remote(function noop() { return null })
    for (let i = 0; i < N; i++) refs.push(noop.remote())
    const sum = async () => Object.values((await api<{ tasks: Record<string, number> }>(g, `/api/jobs/${driver.jobId}`)).body.tasks).reduce((a, b) => a + b, 0)
    await until(async () => (await sum()) === N, 60_000, `the coordinator to hold the ${N} tasks`)
    // A worker runs some of them, then goes: the job keeps 100,000 tasks, some finished, the rest waiting.
    const worker = await g.addWorker(1)
    await until(async () => (await api<{ tasks: { finished: number } }>(g, `/api/jobs/${driver.jobId}`)).body.tasks.finished >= 1000, 60_000, '1,000 tasks to finish')
    await worker.kill('SIGTERM')

    page = await browser.newPage({ viewport: { width: 1440, height: 1100 } })
    page.on('pageerror', (e) => console.error(`[ide] ${e.message}`))
    page.on('response', (r: Response) => {
      const url = new URL(r.url())
      if (url.pathname.startsWith('/api/')) answers.push(r.body().then((b) => ({ url: url.pathname + url.search, bytes: b.length }), () => ({ url: url.pathname + url.search, bytes: 0 })))
    })
    await page.goto(`${g.url}/ide#token=${g.submitToken}`)
  })
  test.afterAll(async () => {
    await page?.close()
    await driver?.close()
    refs = []
    await g?.stop()
  })

  test('the panel shows the job\'s 100,000 tasks, a window of its timeline and a page of its objects, from small answers only', async () => {
    const row = page.locator(`[data-part="history"] tr[data-job="${driver.jobId}"]`)
    await expect(row).toContainText('100,000', { timeout: 20_000 })
    await row.click()
    await expect(page.locator('.job-counts')).toContainText(`${driver.jobId} (hundred-thousand, running): 100,000 tasks`, { timeout: 10_000 })
    await expect(page.locator('.timeline .tl-bar')).toHaveCount(200, { timeout: 10_000 })
    await expect(page.locator('.timeline .axis')).toContainText(/the latest 200 of [\d,]+ tasks that started/)
    await expect(page.locator('[data-part="objects"]')).toContainText('12 of 100,000 live objects')
    await expect(page.locator('[data-part="objects"] tbody tr')).toHaveCount(12)
    await expect(page.locator('.grid-summary')).toContainText(/0 workers · 0 tasks running · [\d,]+ waiting · [\d,]+ finished since start/)
    // The idle page polls every 3 s: let it poll again, then measure everything it was sent.
    const polled = answers.length
    await expect.poll(() => answers.length, { timeout: 10_000 }).toBeGreaterThan(polled + 4)
    await page.screenshot({ path: 'test-results/browser/ide-paging.png', fullPage: true })

    const got = await Promise.all(answers)
    const tasks = got.filter((a) => /^\/api\/jobs\/[^/]+\/tasks/.test(a.url))
    expect(tasks.length).toBeGreaterThan(0)
    for (const a of tasks) {
      const limit = Number(new URL(a.url, g.url).searchParams.get('limit'))
      expect(limit, `${a.url} asks for at most ${MAX_TASKS_ASKED} tasks`).toBeGreaterThan(0)
      expect(limit, `${a.url} asks for at most ${MAX_TASKS_ASKED} tasks`).toBeLessThanOrEqual(MAX_TASKS_ASKED)
    }
    for (const a of got) expect(a.bytes, `${a.url}: ${a.bytes} bytes`).toBeLessThan(MAX_ANSWER_BYTES)
    const largest = got.reduce((m, a) => (a.bytes > m.bytes ? a : m))
    console.error(`${got.length} /api/ answers, ${got.reduce((n, a) => n + a.bytes, 0)} bytes in all; the largest ${largest.bytes} bytes (${largest.url})`)
  })
})
