/**
 * Distributed scoring with tabs: 2 Node peers and 2 tabs score the demo's 10,000 digits,
 * a tab closed mid-run loses nothing, and the /demo page runs end to end.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, expect, type Page } from '@playwright/test'
import type { Grid } from '@colony-grid/client'
import { openTab } from './tab.js'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid } = await import('../dist/harness.js')
const { connect, createScoringPool } = await import('@colony-grid/client')
const { MODEL_DIR, loadDigits, onnxInProcess } = await import('@colony-grid/demo')

type GridProcs = Awaited<ReturnType<typeof startGrid>>
const BATCH = 250
const digits = loadDigits()
const onnx = new Uint8Array(readFileSync(join(MODEL_DIR, 'mnist.onnx')))
const dataset = { data: digits.pixels, shape: [digits.count, 784] }
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

test.describe.serial('scoring on Node peers and tabs', () => {
  let g: GridProcs
  let grid: Grid & { jobId: string }
  let reference: Float32Array
  const tabs: { page: Page; id: string }[] = []

  test.beforeAll(async ({ browser }) => {
    const inproc = await onnxInProcess(onnx, 'wasm')
    reference = await inproc.score(digits.pixels, BATCH)
    await inproc.release()
    g = await startGrid({ workers: 2, executors: 1, memory: true })
    grid = await connect(g.url, { token: g.submitToken, onLog: false })
    for (const caps of ['s1', 's2']) tabs.push(await openTab(browser, g, caps))
  })
  test.afterAll(async () => {
    for (const t of tabs) await t.page.close().catch(() => {})
    await grid?.close()
    await g?.stop()
  })

  test('10,000 digits on 2 Node peers + 2 tabs: in order, and exactly the single-process results', async () => {
    // Every actor loaded first (a tab takes a moment to start onnxruntime), so all four peers take part.
    const pool = await createScoringPool(grid, { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
    await pool.ready(4)
    const result = await pool.score(dataset)
    pool.close()
    expect(result.shape).toEqual([10_000, 10])
    expect(same(result.data, reference), 'grid results equal onnxruntime-web in one process, byte for byte').toBe(true)
    const scored = new Map(result.peers.map((p) => [p.peer, p.rows]))
    for (const id of [...g.workerIds, ...tabs.map((t) => t.id)]) expect(scored.get(id), `peer ${id} scored digits`).toBeGreaterThan(0)
    expect(result.duplicates).toBe(0)
  })

  test('a tab closed mid-run: still all 10,000 results, each once', async () => {
    const victim = tabs[1]
    let closed: Promise<void> | undefined
    // All four actors loaded first, so the tab is sure to be scoring when it closes.
    const pool = await createScoringPool(grid, { onnx }, { batchSize: BATCH, backend: 'wasm', inputScale: 1 / 255 })
    await pool.ready(4)
    const result = await pool.score(dataset, {
      onProgress: (p) => { if (!closed && p.last.peer === victim.id) closed = victim.page.close() },
    })
    pool.close()
    await closed
    expect(closed, 'the tab scored a shard, then closed').toBeDefined()
    expect(same(result.data, reference)).toBe(true)
    expect(result.peers.reduce((n, p) => n + p.rows, 0)).toBe(10_000)
    expect(result.retries, 'the closed tab\'s shard in flight ran again').toBeGreaterThanOrEqual(1)
  })
})

test.describe.serial('the /demo page', () => {
  let g: GridProcs
  test.beforeAll(async () => { g = await startGrid({ workers: 0, memory: true }) })
  test.afterAll(async () => { await g?.stop() })

  test('with 2 tabs joined, Run times each alone, then shows the accuracy, the speed-up over the fastest alone, a chart and the confusion matrix', async ({ browser }) => {
    const joined = [await openTab(browser, g, 'd1'), await openTab(browser, g, 'd2')]
    const page = await browser.newPage({ viewport: { width: 1200, height: 1300 } })
    page.on('pageerror', (e) => console.error(`[demo] ${e.message}`))
    await page.goto(`${g.url}/demo#token=${g.submitToken}&join=${g.joinToken}`)
    await expect(page.locator('#peers tbody tr')).toHaveCount(2, { timeout: 10_000 })
    await page.click('#run')
    await expect(page.locator('#status')).toHaveText(/Scoring: [\d,]+ of 10,000/, { timeout: 60_000 })
    await page.screenshot({ path: 'test-results/browser/demo-running.png', fullPage: true })
    await expect(page.locator('#results')).toBeVisible({ timeout: 120_000 })
    await expect(page.locator('#status')).toHaveText(/Done: 10,000 digits/)
    // As onnxruntime-web in one process scores them: 9,895 of all 10,000, and 1,952 of the 2,000 held out of
    // training (the closest call's top two probabilities are 0.02 apart, so no backend flips one).
    await expect(page.locator('#r-accuracy')).toHaveText('98.95%')
    await expect(page.locator('#r-heldout')).toHaveText('97.60%')
    // The speed-up is over the fastest peer timed alone before the run, not over a peer's share of the run.
    const alone = (await page.locator('#peers tbody tr td.alone').allTextContents()).map((t) => Number(t.replace(/,/g, '')))
    expect(alone, 'each tab was timed alone').toHaveLength(2)
    for (const r of alone) expect(r).toBeGreaterThan(0)
    const speedup = /^(\d+\.\d\d)× \(2 peers; the fastest alone, (p_\w+): ([\d,]+) digits\/s\)$/.exec((await page.textContent('#r-speedup'))!)
    expect(speedup, 'the speed-up names the fastest peer alone').not.toBeNull()
    expect(joined.map((t) => t.id)).toContain(speedup![2])
    const fastest = Number(speedup![3].replace(/,/g, ''))
    expect(Math.abs(fastest - Math.max(...alone))).toBeLessThanOrEqual(1)
    const rate = Number((await page.textContent('#r-rate'))!.replace(/[^\d]/g, ''))
    expect(Number(speedup![1])).toBeCloseTo(rate / fastest, 1)
    await expect(page.locator('#chart canvas')).toHaveCount(1)
    const legend = await page.locator('.u-legend').textContent()
    for (const t of joined) expect(legend, 'the chart has a series for each tab').toContain(t.id)
    await expect(page.locator('#confusion tr')).toHaveCount(11)
    const rows = await page.locator('#peers tbody tr td.num').allTextContents()
    expect(rows.map((r) => Number(r.replace(/,/g, ''))).reduce((a, b) => a + b, 0)).toBe(10_000)
    await expect(page.locator('#open-worker')).toHaveAttribute('href', `/join#token=${g.joinToken}`)
    await page.screenshot({ path: 'test-results/browser/demo-done.png', fullPage: true })
    for (const t of joined) await t.page.close()
    await page.close()
  })
})
