/** ML in tabs: backends picked by measurement, tfjs ready inside tasks, and WebGPU agreeing with wasm. */
import { test, expect, type Page } from '@playwright/test'
import type { Grid } from '@colony-grid/client'

process.env.COLONY_RTC_BIND_ADDRESS = ''
const { startGrid, api } = await import('../dist/harness.js')
const { connect } = await import('@colony-grid/client')
const { matmulProbeModel } = await import('@colony-grid/worker-web/dist/browser/onnx-probe-model.js')

type GridProcs = Awaited<ReturnType<typeof startGrid>>
let g: GridProcs
let grid: Grid & { jobId: string }

test.use({
  launchOptions: {
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-unsafe-webgpu'],
  },
})

async function joinTab(page: Page): Promise<void> {
  page.on('pageerror', (e) => console.error(`[tab] ${e.message}`))
  await page.goto(`${g.url}/join#token=${g.joinToken}`)
  await page.click('#join')
  await expect(page.locator('#s-conn')).toHaveText('connected', { timeout: 60_000 })
}

test.describe.serial('ML backends in a tab', () => {
  test.beforeAll(async () => {
    g = await startGrid({ workers: 0, memory: true })
    grid = await connect(g.url, { token: g.submitToken, onLog: false })
  })
  test.afterAll(async () => { await grid?.close(); await g?.stop() })

  test('the probe times each backend, picks the fastest, and a webgpu task matches wasm within tolerance', async ({ page }) => {
    await joinTab(page)
    const timings = await page.textContent('#s-timings')
    expect(timings).toMatch(/wasm [\d.]+ ms/)
    expect(timings).toMatch(/webgpu [\d.]+ ms/)
    // The fastest measured backend is the default, whatever its name.
    const ms = Object.fromEntries([...timings!.matchAll(/(\w+) ([\d.]+) ms/g)].map((m) => [m[1], Number(m[2])]))
    const fastest = Object.entries(ms).sort((a, b) => a[1] - b[1])[0][0]
    const ortTimings = await page.textContent('#s-ort-timings')
    expect(ortTimings).toMatch(/wasm [\d.]+ ms/)
    const ortMs = Object.fromEntries([...ortTimings!.matchAll(/(\w+) ([\d.]+) ms/g)].map((m) => [m[1], Number(m[2])]))
    const ortFastest = Object.entries(ortMs).sort((a, b) => a[1] - b[1])[0][0]
    await expect(page.locator('#s-backend')).toHaveText(`tfjs ${fastest} · onnx ${ortFastest}`)
    const peer = (await api<{ kind: string; capabilities: string[] }[]>(g, '/api/peers')).body.find((p) => p.kind === 'browser')!
    expect(peer.capabilities).toEqual(expect.arrayContaining(['webgpu', `tfjs-${fastest}`, `ort-${ortFastest}`]))
    await page.screenshot({ path: 'test-results/browser/join-page-probed.png' })

    const matmul = grid.remote(async function matmul(backend: string) {
      const ml = (globalThis as unknown as { colony: { ml: { tf(o: { backend: string }): Promise<typeof import('@tensorflow/tfjs')> } } }).colony.ml
      const tf = await ml.tf({ backend })
      const a = tf.tensor2d(Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)), [64, 64])
      const b = tf.tensor2d(Array.from({ length: 64 * 64 }, (_, i) => Math.cos(i)), [64, 64])
      return { backend: tf.getBackend(), values: Array.from(await tf.matMul(a, b).data()) }
    })
    const onGpu = await grid.get(matmul.options({ capabilities: ['webgpu'] }).remote('webgpu'), { timeoutMs: 90_000 })
    const onWasm = await grid.get(matmul.remote('wasm'), { timeoutMs: 90_000 })
    expect(onGpu.backend).toBe('webgpu')
    expect(onWasm.backend).toBe('wasm')
    expect(onGpu.values).toHaveLength(64 * 64)
    const worst = Math.max(...onGpu.values.map((v, i) => Math.abs(v - onWasm.values[i])))
    expect(worst).toBeLessThan(1e-3)
  })

  test('a task runs an ONNX model through colony.ml.session, cached, and gets the right numbers', async ({ page }) => {
    await joinTab(page) // each test has its own page: the previous tab left with it
    const model = matmulProbeModel() // y = x · W with W[i] = sin(i) / 64
    const infer = grid.remote(async function infer(bytes: Uint8Array) {
      const ml = (globalThis as unknown as { colony: { ml: { ort(): Promise<typeof import('onnxruntime-web')>; session(m: Uint8Array): Promise<import('onnxruntime-web').InferenceSession> } } }).colony.ml
      const ort = await ml.ort()
      const s = await ml.session(bytes)
      const again = await ml.session(bytes)
      const x = new ort.Tensor('float32', Float32Array.from({ length: 64 }, (_, i) => i / 64), [1, 64])
      const y = await s.run({ x })
      return { cached: s === again, y: Array.from(y.y.data as Float32Array) }
    })
    const out = await grid.get(infer.remote(model), { timeoutMs: 60_000 })
    expect(out.cached).toBe(true)
    const want = Array.from({ length: 64 }, (_, col) => Array.from({ length: 64 }, (_, k) => (k / 64) * (Math.sin(k * 64 + col) / 64)).reduce((a, b) => a + b, 0))
    expect(Math.max(...out.y.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-4)
  })
})
