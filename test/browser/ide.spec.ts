/**
 * The web IDE at /ide, in real Chromium against a real coordinator and Node peers: every
 * example runs, errors point at the right line, an endless task is cancelled and the grid
 * goes on, limits give clear messages, the timeline shows the tasks that ran, and the Trials
 * panel shows a hyperparameter search.
 */
import { test, expect, type Page } from '@playwright/test'

// Inside the test namespace Chromium offers its veth address, never loopback: Node peers must not bind to 127.0.0.1.
process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid } = await import('../dist/harness.js')
type GridProcs = Awaited<ReturnType<typeof startGrid>>

const BUNDLE_LIMIT = 200_000
const USER_FILES = {
  'boom.ts': [
    "import type { Grid } from '@colony-grid/client'",
    '',
    'export function explode(n: number) {',
    '  if (n > 2) {',
    "    throw new Error('too big: ' + n)",
    '  }',
    '  return n',
    '}',
    '',
    'export default async function main(grid: Grid) {',
    '  return grid.get(grid.remote(explode).remote(5))',
    '}',
    '',
  ].join('\n'),
  'spin.ts': [
    "import type { Grid } from '@colony-grid/client'",
    'export function spin() { for (;;) {} }',
    'export default async function main(grid: Grid) { return grid.get(grid.remote(spin).remote()) }',
    '',
  ].join('\n'),
  'tensors.ts': [
    "import * as tf from '@tensorflow/tfjs'",
    "import type { Grid } from '@colony-grid/client'",
    'export function matsum(n: number) {',
    '  const ones = tf.ones([n, n])',
    '  return tf.sum(tf.matMul(ones, ones)).dataSync()[0]',
    '}',
    'export default async function main(grid: Grid) { return grid.get(grid.remote(matsum).remote(4)) }',
    '',
  ].join('\n'),
  'broken.ts': "export default async function main(grid) {\n  return grid.get(\n}\n",
  'big.ts': `export const blob = '${'x'.repeat(BUNDLE_LIMIT + 10_000)}'\nexport default async function main() { return blob.length }\n`,
}

let g: GridProcs
let page: Page

async function runFile(file: string): Promise<void> {
  await page.click(`li[data-file="${file}"]`)
  await expect(page.locator('#file-name')).toHaveText(file)
  await expect(page.locator('#run')).toBeEnabled()
  await page.click('#run')
  // The click starts the run at once (the output restarts); a quick failure may already have ended it.
  await expect(page.locator('#output')).toContainText(`Bundling ${file}`)
}
const finished = (timeout = 90_000) => expect(page.locator('#run')).toBeEnabled({ timeout })

test.describe.serial('the web IDE', () => {
  test.beforeAll(async ({ browser }) => {
    g = await startGrid({ workers: 2, executors: 1, memory: true, env: { COLONY_MAX_BUNDLE_BYTES: String(BUNDLE_LIMIT) } })
    page = await browser.newPage({ viewport: { width: 1440, height: 1100 } })
    page.on('pageerror', (e) => console.error(`[ide] ${e.message}`))
    await page.addInitScript((files) => {
      if (!localStorage.getItem('colony.ide.files')) localStorage.setItem('colony.ide.files', JSON.stringify(files))
    }, USER_FILES)
    await page.goto(`${g.url}/ide#token=${g.submitToken}`)
    await expect(page.locator('#examples li')).toHaveCount(7)
  })
  test.afterAll(async () => { await page?.close(); await g?.stop() })

  const examples: [string, RegExp, RegExp?][] = [
    ['hello.ts', /"task 9 says hi"/, /\[greet @ p_\w+\] hello from task \d/],
    ['dag.ts', /^1496$/],
    ['monte-carlo-pi.ts', /pi: 3\.1[0-9]*/, /\[main\] π ≈ 3\.1/],
    ['counter.ts', /final: 55/],
    // The 2,000 digits held out of training (8000-9999): 1,952 right, as onnxruntime-web in one process
    // scores them (the closest call's top two probabilities are 0.02 apart, so no backend flips one).
    ['mnist-scoring.ts', /heldOutAccuracy: 0\.976\b/, /\[main\] 2000 of 2000 held-out digits scored/],
    // A 784-64-10 perceptron, 2 epochs on digits 0-7999: 0.92-0.93 held out.
    ['mnist-training.ts', /heldOutAccuracy: 0\.9\d/, /\[main\] epoch 2 of 2: mean loss/],
  ]
  for (const [file, result, log] of examples) {
    test(`runs the example ${file}`, async () => {
      await runFile(file)
      await finished()
      await expect(page.locator('.out.result')).toHaveText(result)
      if (log) await expect(page.locator('#output')).toContainText(log)
      await expect(page.locator('.out.error')).toHaveCount(0)
    })
  }

  test('runs the example mnist-tuning.ts, and the Trials panel shows its search live', async () => {
    test.setTimeout(360_000)
    // A trial's nested training holds a parameter-server shard and wants a worker or two: a third CPU slot,
    // for this test only, gives it its second worker.
    const extra = await g.addWorker(1)
    try {
      await runFile('mnist-tuning.ts')
      await expect(page.locator('#trials')).toBeVisible({ timeout: 60_000 })
      await expect(page.locator('#trials .state.running').first()).toBeVisible()
      await expect(page.locator('#trials path.curve').first()).toBeAttached({ timeout: 120_000 })
      await page.locator('#trials').screenshot({ path: 'test-results/browser/ide-trials-running.png' })
      await finished(240_000)
      // 8 trials of up to 4 one-epoch runs on 2,000 digits: the best reaches 0.8-0.9 on 1,000 held out.
      await expect(page.locator('.out.result')).toHaveText(/best: \{ lr: [\d.e-]+, batchSize: (32|64|128), accuracy: 0\.[89]\d*/)
      await expect(page.locator('.out.error')).toHaveCount(0)
      await expect(page.locator('#trials tbody tr')).toHaveCount(8)
      await expect(page.locator('#trials .state.running')).toHaveCount(0)
      await expect(page.locator('#trials .trials-head')).toContainText(/accuracy, max · ASHA · 8 trials: .*best t\d/)
      // A line (a dot, for a trial stopped at epoch 1) a trial; the best drawn thick, its row marked.
      await expect(page.locator('#trials path.curve')).toHaveCount(8)
      await expect(page.locator('#trials path.curve.best')).toHaveCount(1)
      await expect(page.locator('#trials tr.best')).toHaveCount(1)
      await page.locator('#trials').screenshot({ path: 'test-results/browser/ide-trials.png' })
    } finally {
      await extra.kill('SIGTERM')
      g.workers.splice(g.workers.indexOf(extra), 1)
    }
    await runFile('counter.ts')
    await finished()
    await expect(page.locator('#trials')).toBeHidden()
    await expect(page.locator('[data-part="peers"] tbody tr')).toHaveCount(2, { timeout: 15_000 })
  })

  test('a task imports @tensorflow/tfjs, and gets its peer\'s ready copy', async () => {
    await runFile('tensors.ts')
    await finished()
    await expect(page.locator('.out.result')).toHaveText('64')
  })

  test('the timeline shows a bar for each task that ran, and the panels list peers and jobs', async () => {
    await runFile('dag.ts')
    await finished()
    await page.click('li[data-file="dag.ts"]')
    await expect(page.locator('.timeline .tl-bar.finished')).toHaveCount(31, { timeout: 10_000 })
    const lanes = await page.locator('.timeline .lane-name').allTextContents()
    expect(lanes.length).toBeGreaterThanOrEqual(1)
    for (const lane of lanes) expect(g.workerIds).toContain(lane)
    await expect(page.locator('[data-part="peers"] tbody tr')).toHaveCount(2)
    await expect(page.locator('[data-part="history"] tbody tr').first()).toContainText('ide: dag.ts')
    await page.screenshot({ path: 'test-results/browser/ide-after-run.png', fullPage: true })
  })

  test('a thrown error shows the remote stack and marks the line in the editor', async () => {
    await runFile('boom.ts')
    await finished()
    await expect(page.locator('.out.error').first()).toContainText('too big: 5')
    await expect(page.locator('.out.error').first()).toContainText(/on peer p_\w+/)
    const jump = page.locator('.out.error.jump').first()
    await expect(jump).toContainText('boom.ts:5')
    await expect(page.locator('.cm-error-line')).toHaveText("    throw new Error('too big: ' + n)")
    await page.screenshot({ path: 'test-results/browser/ide-error.png' })
  })

  test('an endless task is cancelled, and the grid runs the next job', async () => {
    await runFile('spin.ts')
    await expect(page.locator('#progress')).toContainText('1 running', { timeout: 30_000 })
    await expect(page.locator('.timeline .tl-bar.running')).toHaveCount(1)
    await page.screenshot({ path: 'test-results/browser/ide-running.png' })
    await page.click('#cancel')
    await finished()
    await expect(page.locator('.out.error')).toContainText('Cancelled')
    await runFile('counter.ts')
    await finished()
    await expect(page.locator('.out.result')).toHaveText(/final: 55/)
  })

  test('a syntax error and an oversized bundle get clear messages', async () => {
    await runFile('broken.ts')
    await finished()
    await expect(page.locator('.out.error')).toContainText(/Could not bundle: broken\.ts:3:\d+: /)
    await expect(page.locator('.cm-error-line')).toHaveCount(1)
    await runFile('big.ts')
    await finished()
    await expect(page.locator('.out.error')).toContainText(/refused the bundle \(HTTP 413\).*limit is 200000/)
  })
})
