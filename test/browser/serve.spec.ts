/**
 * The /demo page's Serve mode, end to end: a Node peer (2 slots) and 2 tabs host the demo's
 * ONNX model as the deployment demo-mnist; the page classifies held-out digits and a digit drawn
 * with the mouse through POST /serve/demo-mnist, then puts it under load and closes a tab that
 * hosts a replica mid-load: no request fails, and the batches grow past one.
 */
import { copyFileSync } from 'node:fs'
import { test, expect, type Page } from '@playwright/test'
import { openTab } from './tab.js'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid } = await import('../dist/harness.js')
const { HELD_OUT_FROM } = await import('@colony-grid/demo')

type GridProcs = Awaited<ReturnType<typeof startGrid>>
const count = async (page: Page, id: string) => Number(((await page.textContent(`#${id}`)) ?? '').replace(/,/g, ''))

test.describe.serial('the /demo page\'s Serve mode', () => {
  let g: GridProcs
  test.beforeAll(async () => { g = await startGrid({ workers: 1, executors: 2, memory: true }) })
  test.afterAll(async () => { await g?.stop() })

  test('deploys on a Node peer and 2 tabs, classifies held-out digits, and loses no request under load when a tab closes', async ({ browser }) => {
    test.setTimeout(3 * 60_000)
    const pages: Page[] = []
    try {
      const tabs = [await openTab(browser, g, 'v1'), await openTab(browser, g, 'v2')]
      pages.push(...tabs.map((t) => t.page))
      const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } })
      pages.push(page)
      page.on('pageerror', (e) => console.error(`[demo] ${e.message}`))
      await page.goto(`${g.url}/demo#token=${g.submitToken}&join=${g.joinToken}`)
      await expect(page.locator('#peers tbody tr')).toHaveCount(3, { timeout: 10_000 })
      await page.click('#mode-serve')
      await expect(page.locator('#mode-serve')).toHaveAttribute('aria-pressed', 'true')
      await expect(page.locator('#run')).toBeHidden()
      await expect(page.locator('#serve-canvas')).toBeVisible()

      // One replica on each free slot: 2 on the Node peer, one on each tab.
      const started = Date.now()
      await page.click('#serve-deploy')
      await expect(page.locator('#serve-status')).toHaveText(/^Serving demo-mnist on \d+ replicas/, { timeout: 90_000 })
      console.log(`[serve.spec] deployed in ${((Date.now() - started) / 1000).toFixed(1)} s: ${await page.textContent('#serve-status')}`)
      await expect(page.locator('#serve-status')).not.toHaveClass(/error/)
      await expect(page.locator('#serve-status')).toHaveText(/on 4 replicas/)
      const kinds = () => page.locator('#serve-replicas tbody td.kind').allTextContents()
      await expect.poll(kinds, { timeout: 10_000 }).toContain('tab')
      expect(await kinds(), 'replicas on the Node peer too').toContain('node')
      await expect(page.locator('#serve-curl')).toContainText(`${g.url}/serve/demo-mnist`)

      // Five held-out digits, in order from the first held out.
      let right = 0
      for (let k = 0; k < 5; k++) {
        await page.click('#serve-sample')
        await expect(page.locator('#serve-prediction')).toHaveAttribute('data-sample', String(HELD_OUT_FROM + k), { timeout: 15_000 })
        const truth = /true digit: (\d)/.exec((await page.textContent('#serve-truth')) ?? '')?.[1]
        const predicted = (await page.textContent('#serve-prediction'))?.trim()
        console.log(`[serve.spec] held-out #${HELD_OUT_FROM + k}: truth ${truth}, predicted ${predicted}; ${await page.textContent('#serve-latency')}`)
        if (truth !== undefined && truth === predicted) right++
      }
      expect(right, 'held-out digits predicted right, of 5').toBeGreaterThanOrEqual(4)
      await expect(page.locator('#serve-probs > div')).toHaveCount(10)

      // A "1" drawn with the mouse: one vertical stroke.
      await page.click('#serve-clear')
      const box = (await page.locator('#serve-canvas').boundingBox())!
      await page.mouse.move(box.x + 140, box.y + 50)
      await page.mouse.down()
      await page.mouse.move(box.x + 144, box.y + 230, { steps: 12 })
      await page.mouse.up()
      await expect(page.locator('#serve-prediction')).toHaveAttribute('data-sample', 'drawn', { timeout: 15_000 })
      console.log(`[serve.spec] a vertical stroke drawn: predicted ${await page.textContent('#serve-prediction')}`)
      await expect(page.locator('#serve-prediction')).toHaveText('1')

      // The load: 300 answers, then a tab that hosts a replica closes, then 300 more.
      await page.click('#serve-load')
      await expect(page.locator('#serve-load')).toHaveAttribute('aria-pressed', 'true')
      await expect.poll(() => count(page, 'serve-answered'), { timeout: 60_000 }).toBeGreaterThanOrEqual(300)
      const hosts = await page.locator('#serve-replicas tbody tr:not(.gone) td.peer').allTextContents()
      const victim = tabs.find((t) => hosts.includes(t.id))
      expect(victim, `a tab among the replicas' peers (${hosts.join(', ')})`).toBeDefined()
      const before = await count(page, 'serve-answered')
      console.log(`[serve.spec] ${before} answered; closing tab ${victim!.id}; replicas: ${(await page.locator('#serve-replicas tbody tr').allInnerTexts()).map((r) => r.replace(/\s+/g, ' ')).join(' | ')}`)
      await victim!.page.close()
      await expect.poll(() => count(page, 'serve-answered'), { timeout: 60_000 }).toBeGreaterThanOrEqual(before + 300)
      await page.click('#serve-load')
      await expect(page.locator('#serve-load')).toHaveAttribute('aria-pressed', 'false', { timeout: 30_000 })
      // One more poll of the deployment's figures, for the table and charts to show the end.
      await page.waitForTimeout(1200)
      const figures = Object.fromEntries(await Promise.all(['serve-answered', 'serve-refused', 'serve-failed', 'serve-outcomes', 'serve-right', 'serve-requests', 'serve-p50', 'serve-cache', 'serve-max-batch'].map(async (id) => [id, await page.textContent(`#${id}`)])))
      console.log(`[serve.spec] load done after ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(figures)}; status: ${await page.textContent('#serve-status')}`)
      console.log(`[serve.spec] replicas: ${(await page.locator('#serve-replicas tbody tr').allInnerTexts()).map((r) => r.replace(/\s+/g, ' ')).join(' | ')}`)
      expect(await page.textContent('#serve-failed'), 'no request failed, the closed tab\'s included').toBe('0')
      await expect(page.locator('#serve-status')).not.toHaveClass(/error/)
      expect(await count(page, 'serve-max-batch'), 'a batch of more than one row under load').toBeGreaterThan(1)
      await expect(page.locator('#serve-replicas tbody tr.gone td.peer').first()).toHaveText(victim!.id)
      await expect(page.locator('#serve-batch-chart canvas')).toHaveCount(1)
      await expect(page.locator('#serve-latency-chart canvas')).toHaveCount(1)
      await page.screenshot({ path: 'test-results/browser/demo-serve.png', fullPage: true })
      copyFileSync('test-results/browser/demo-serve.png', '/tmp/demo-serve.png')

      await page.click('#serve-undeploy')
      await expect(page.locator('#serve-status')).toHaveText(/demo-mnist is deleted/, { timeout: 10_000 })
    } finally {
      for (const p of pages) await p.close().catch(() => {})
    }
  })
})
