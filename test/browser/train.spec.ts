/**
 * The /demo page's Train mode, end to end: a Node peer and 2 tabs train the demo's convnet,
 * then the page scores the held-out digits with the model it trained, through the scoring path.
 */
import { test, expect, type Page } from '@playwright/test'
import { openTab } from './tab.js'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid } = await import('../dist/harness.js')
const { DEMO_TRAINING } = await import('@colony-grid/demo')
// The page trains on the 8,000 training digits and a shifted copy of each.
const STEPS = Math.ceil(16_000 / DEMO_TRAINING.batchSize) * DEMO_TRAINING.epochs
const steps = STEPS.toLocaleString('en-US')

type GridProcs = Awaited<ReturnType<typeof startGrid>>

/**
 * Waits for the run to end, printing the step and each worker's row every 30 s: when a run is slow,
 * the log says which worker held the others back (under SSP the fastest wait for the slowest) and
 * where its steps went (pull, compute, push). A run whose status stops moving for 2 minutes has hung.
 */
async function waitForDone(page: Page, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  const workers = async () => (await page.locator('#train-workers tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((td) => td.textContent).join(' ')))).join(' | ')
  let next = Date.now() + 30_000, last = '', moved = Date.now()
  for (;;) {
    const status = (await page.textContent('#train-status')) ?? ''
    if (/^Done: |^The run failed/.test(status)) return
    if (status !== last) { last = status; moved = Date.now() }
    if (Date.now() > next) { console.log(`[train.spec] ${status} workers (id peer kind backend steps samples samples/s ms/step pull·compute·push staleness): ${await workers()}`); next += 30_000 }
    if (Date.now() > deadline || Date.now() - moved > 120_000) {
      throw new Error(`training ${Date.now() > deadline ? `did not end in ${ms / 1000} s` : 'made no progress for 120 s'}: ${status}; workers: ${await workers()}`)
    }
    await page.waitForTimeout(500)
  }
}

test.describe.serial('the /demo page\'s Train mode', () => {
  let g: GridProcs
  // Three slots on the Node peer (the page puts the two parameter-server shards there, beside a worker) and one on each tab.
  test.beforeAll(async () => { g = await startGrid({ workers: 1, executors: 3, memory: true }) })
  test.afterAll(async () => { await g?.stop() })

  test('with a Node peer and 2 tabs joined, Train trains the convnet on all three to >= 97% held out', async ({ browser }) => {
    // Hundreds of steps of the convnet on a 2-core machine, shared by the tabs, the Node peer and the page: minutes.
    test.setTimeout(13 * 60_000)
    const tabs = [await openTab(browser, g, 't1'), await openTab(browser, g, 't2')]
    const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } })
    page.on('pageerror', (e) => console.error(`[demo] ${e.message}`))
    await page.goto(`${g.url}/demo#token=${g.submitToken}&join=${g.joinToken}`)
    await expect(page.locator('#peers tbody tr')).toHaveCount(3, { timeout: 10_000 })
    await page.click('#mode-train')
    await expect(page.locator('#mode-train')).toHaveAttribute('aria-pressed', 'true')
    await expect(page.locator('#run')).toBeHidden()
    const started = Date.now()
    await page.click('#train-run')
    await expect(page.locator('#train-status')).toHaveText(new RegExp(`Training: step [\\d,]+ of ${steps} `), { timeout: 120_000 })
    const firstStep = Date.now()
    await expect(page.locator('#loss-chart canvas')).toHaveCount(1)
    await waitForDone(page, 11 * 60_000)
    console.log(`[train.spec] first step after ${((firstStep - started) / 1000).toFixed(1)} s, done after ${((Date.now() - started) / 1000).toFixed(1)} s: ${await page.textContent('#train-status')}`)
    await expect(page.locator('#train-status')).not.toHaveClass(/error/)

    const accuracy = Number(/^(\d+\.\d\d)%$/.exec((await page.textContent('#train-accuracy'))!.trim())?.[1])
    expect(accuracy, 'the trained model\'s held-out accuracy, scored on the grid').toBeGreaterThanOrEqual(97)
    await expect(page.locator('#train-confusion tr')).toHaveCount(11)

    const workerPeers = await page.locator('#train-workers tbody td.peer').allTextContents()
    console.log(`[train.spec] workers on ${workerPeers.join(', ')}; held-out ${accuracy}% (the run's own: ${await page.textContent('#train-eval')})`)
    expect(new Set(workerPeers).size, 'workers on all 3 peers').toBe(3)
    for (const t of tabs) expect(workerPeers, `tab ${t.id} trained`).toContain(t.id)
    for (const n of await page.locator('#train-workers tbody td:nth-child(5)').allTextContents()) expect(Number(n.replace(/,/g, ''))).toBeGreaterThan(0)

    await expect(page.locator('#staleness canvas')).toHaveCount(1)
    await expect(page.locator('#staleness-summary')).toHaveText(new RegExp(`^${steps} steps: [\\d.]+ updates on average`))
    await expect(page.locator('#train-epochs tbody tr')).toHaveCount(DEMO_TRAINING.epochs)
    await page.screenshot({ path: '/tmp/train-mode.png', fullPage: true })
    await page.screenshot({ path: 'test-results/browser/demo-train-done.png', fullPage: true })
    for (const t of tabs) await t.page.close()
    await page.close()
  })
})
