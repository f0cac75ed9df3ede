/** Opens a join page, joins, and waits until the tab is a connected worker. */
import { expect, type Browser, type Page } from '@playwright/test'

export async function openTab(browser: Browser, g: { url: string; joinToken: string }, caps: string): Promise<{ page: Page; id: string }> {
  const page = await browser.newPage()
  page.on('pageerror', (e) => console.error(`[tab ${caps}] ${e.message}`))
  await page.goto(`${g.url}/join#token=${g.joinToken}&caps=${caps}`)
  await page.click('#join')
  await expect(page.locator('#s-conn')).toHaveText('connected', { timeout: 20_000 })
  return { page, id: (await page.textContent('#s-peer'))! }
}
