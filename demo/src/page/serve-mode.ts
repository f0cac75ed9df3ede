/**
 * The /demo page's Serve mode: deploys the demo's ONNX model on the coordinator (POST /api/deployments),
 * one replica on each free CPU slot of the grid, then calls its endpoint as any HTTP client would
 * (POST /serve/demo-mnist): a digit drawn on the canvas, a held-out digit from the dataset, or a load
 * of 32 loops. Twice a second it reads the deployment's figures (GET /serve/demo-mnist) into the
 * batch-size and latency charts and the replicas table.
 */
import { deploymentBody, type DeploymentStats, type PeerInfo, type ServeOptions } from '@colony-grid/client/browser'
import { DIGIT_PIXELS, HELD_OUT_FROM } from '../digits-file.js'
import { $, demoDigits, fetchBytes, fetchWorkers, fmt, hashParam, plural, rememberToken, setBusy, showStatus, token } from './common.js'
import { TimeChart } from './serve-charts.js'
import { paintDigit, toDigit } from './digit-canvas.js'
import { ENDPOINT, HttpError, Load, NAME, argmax, call, predict, readStats } from './serve-load.js'

const kindName = (p: PeerInfo) => (p.kind === 'browser' ? 'tab' : p.kind)
const percentile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0)

/** A free CPU slot of each ready worker peer: where a replica can go. */
function freeSlots(peers: PeerInfo[]): number {
  return peers.filter((p) => !p.paused && !p.quarantined).reduce((n, p) => n + Math.max(0, (p.resources.cpu ?? 0) - p.running), 0)
}

interface ReplicaRow { peer: string; backend: string; served: number; batches: number; batchSize: number; gone: boolean }

export function initServeMode(): { shown(): void } {
  const deployButton = $<HTMLButtonElement>('serve-deploy'), undeployButton = $<HTMLButtonElement>('serve-undeploy')
  const loadButton = $<HTMLButtonElement>('serve-load'), sampleButton = $<HTMLButtonElement>('serve-sample')
  const canvas = $<HTMLCanvasElement>('serve-canvas')
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!
  const batchChart = new TimeChart($('serve-batch-chart'), 'rows a batch', [
    { label: 'mean batch', stroke: '#2f6fde', width: 2 },
    { label: 'largest batch', stroke: '#e8710a' },
    { label: 'AIMD limit (replicas\' mean)', stroke: '#8a93a3', dash: [4, 4] },
  ])
  const latencyChart = new TimeChart($('serve-latency-chart'), 'ms', [
    { label: 'p50', stroke: '#2f6fde', width: 2 },
    { label: 'p99', stroke: '#d93025' },
    { label: 'p50 at this page', stroke: '#1e8e3e' },
  ])

  /** The status line shows the deployment, or an error: an error stays until the next action. */
  let statusIsError = false
  const status = (text: string, error = false) => { statusIsError = error; showStatus($('serve-status'), text, error) }
  const fail = (what: string, e: unknown) => { status(`${what}: ${(e as Error)?.message ?? e}`, true); console.error(e) }

  const kindOf = new Map<string, string>()
  let kindsAt = 0
  const refreshKinds = async () => {
    kindsAt = performance.now()
    for (const p of await fetchWorkers() ?? []) kindOf.set(p.id, kindName(p))
  }

  // The deployment's figures, polled while it is deployed.
  let deployed = false
  let ticker: ReturnType<typeof setInterval> | undefined
  let polling = false
  /** Deleting it from this page: a figures request in flight then finds it gone, which is no news (nor after, once deployed is false). */
  let deleting = false
  let maxBatch = 0
  let first = true
  let lastAnswered = 0, lastTick = performance.now()
  const replicaRows = new Map<string, ReplicaRow>()
  const load = new Load()

  function servingText(s: DeploymentStats): string {
    const replicas = s.versions.flatMap((v) => v.replicas)
    const on = (kind: string, one: string, many: string) => {
      const here = replicas.filter((r) => kindOf.get(r.peer) === kind), peers = new Set(here.map((r) => r.peer)).size
      return here.length ? `${here.length} on ${peers === 1 ? one : `${peers} ${many}`}` : ''
    }
    const where = [on('tab', 'a tab', 'tabs'), on('node', 'a Node peer', 'Node peers')].filter(Boolean).join(', ')
    return `Serving ${NAME} on ${plural(replicas.length, 'replica')}${where ? ` (${where})` : ''}: POST ${location.origin}${ENDPOINT}`
  }

  function resetFigures(): void {
    maxBatch = 0
    first = true
    replicaRows.clear()
    batchChart.reset()
    latencyChart.reset()
    renderReplicas(0)
  }

  function renderReplicas(total: number): void {
    const rows = [...replicaRows.entries()].sort(([, a], [, b]) => Number(a.gone) - Number(b.gone))
    $('serve-replicas').querySelector('tbody')!.replaceChildren(...rows.map(([, r]) => {
      const tr = document.createElement('tr')
      if (r.gone) { tr.className = 'gone'; tr.title = 'Its peer left: its batch in flight went to another replica' }
      const cells: [string, string][] = [
        [r.peer, 'peer'], [kindOf.get(r.peer) ?? '—', 'kind'], [r.backend || '—', ''], [fmt(r.batches), 'num'], [fmt(r.served), 'num served'],
        [total ? `${fmt((100 * r.served) / total, 1)}%` : '—', 'num'], [r.gone ? '—' : fmt(r.batchSize), 'num'],
      ]
      tr.append(...cells.map(([text, className]) => Object.assign(document.createElement('td'), { textContent: text, className })))
      return tr
    }))
  }

  function showStats(s: DeploymentStats): void {
    const replicas = s.versions.flatMap((v) => v.replicas)
    if (replicas.some((r) => !kindOf.has(r.peer)) && performance.now() - kindsAt > 2000) void refreshKinds()
    // One row per replica; a peer's replicas counted in order, so a peer with two slots has two rows.
    const seen = new Map<string, number>()
    const live = new Set<string>()
    // The batches sent since the last poll, replica by replica (a replica that left takes its count with it).
    let sent = 0
    for (const r of replicas) {
      const n = seen.get(r.peer) ?? 0
      seen.set(r.peer, n + 1)
      const key = `${r.peer}#${n}`
      live.add(key)
      sent += Math.max(0, r.batches - (replicaRows.get(key)?.batches ?? 0))
      replicaRows.set(key, { peer: r.peer, backend: r.backend, served: r.served, batches: r.batches, batchSize: r.batchSize, gone: false })
    }
    for (const [key, r] of replicaRows) if (!live.has(key)) r.gone = true
    const total = [...replicaRows.values()].reduce((n, r) => n + r.served, 0)
    renderReplicas(total)

    // Their sizes: the newest of the recent batch sizes. The first poll has no interval before it.
    const recent = s.versions.flatMap((v) => v.recentBatches)
    const fresh = first ? [] : recent.slice(recent.length - Math.min(recent.length, sent))
    first = false
    for (const b of recent) maxBatch = Math.max(maxBatch, b)
    const limit = replicas.length ? replicas.reduce((n, r) => n + r.batchSize, 0) / replicas.length : null
    batchChart.add(fresh.length ? [fresh.reduce((a, b) => a + b, 0) / fresh.length, Math.max(...fresh), limit] : [null, null, limit])
    const mine = load.drain()
    latencyChart.add(s.latency.count ? [s.latency.p50, s.latency.p99, mine.length ? percentile(mine, 0.5) : null] : [null, null, null])
    if (document.body.dataset.mode === 'serve') { batchChart.draw(); latencyChart.draw() }

    $('serve-requests').textContent = `${fmt(s.requests)} (${fmt(s.rows)} ${s.rows === 1 ? 'row' : 'rows'})`
    $('serve-p50').textContent = s.latency.count ? `${fmt(s.latency.p50, 1)} ms · ${fmt(s.latency.p99, 1)} ms` : '—'
    $('serve-cache').textContent = `${fmt(100 * s.cache.hitRatio, 1)}% (${fmt(s.cache.hits)} hits)`
    $('serve-pending').textContent = `${fmt(s.pending)} rows (${fmt(s.versions.reduce((n, v) => n + v.queued, 0))} queued)`
    $('serve-max-batch').textContent = String(maxBatch)
    if (!statusIsError && !busyDeploying) status(servingText(s))
  }

  function showLoad(): void {
    const now = performance.now()
    const rate = (load.answered - lastAnswered) / Math.max(1e-3, (now - lastTick) / 1000)
    lastAnswered = load.answered; lastTick = now
    $('serve-answered').textContent = fmt(load.answered)
    $('serve-refused').textContent = fmt(load.refused)
    $('serve-failed').textContent = fmt(load.failed)
    $('serve-failed').classList.toggle('bad', load.failed > 0)
    $('serve-rate').textContent = load.running ? `${fmt(rate)} requests/s` : '—'
    $('serve-right').textContent = load.answered ? `${fmt((100 * load.right) / load.answered, 1)}%` : '—'
    const total = load.total
    $('serve-outcomes').textContent = total
      ? [...load.outcomes.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([code, n]) => `${code === 'network' ? 'no answer' : code}: ${fmt((100 * n) / total, 1)}%`).join(' · ')
      : '—'
  }

  async function poll(): Promise<void> {
    if (polling) return
    polling = true
    try {
      showLoad()
      showStats(await readStats())
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) {
        if (deleting || !deployed) return
        stopPolling()
        void stopLoad()
        status(`${NAME} is not deployed any more (deleted elsewhere, or the coordinator restarted without it): click Deploy.`, true)
      } else if (!statusIsError) {
        fail(`Could not read ${NAME}'s figures`, e)
      }
    } finally {
      polling = false
    }
  }

  function startPolling(): void {
    deployed = true
    undeployButton.disabled = false
    loadButton.disabled = false
    ticker ??= setInterval(() => { void poll() }, 500)
  }

  function stopPolling(): void {
    deployed = false
    clearInterval(ticker)
    ticker = undefined
    undeployButton.disabled = true
    loadButton.disabled = true
  }

  let busyDeploying = false
  async function deploy(): Promise<void> {
    if (!rememberToken()) { status('Paste the submit token first (colony start prints it).', true); return }
    busyDeploying = true
    deployButton.disabled = undeployButton.disabled = true
    setBusy(true)
    try {
      await stopLoad()
      status('Loading the model…')
      const onnx = await fetchBytes('/demo-files/mnist.onnx')
      let peers = await fetchWorkers()
      if (!peers) throw new Error('the coordinator did not list its peers: is the submit token right?')
      for (const p of peers) kindOf.set(p.id, kindName(p))
      // A deployment of this name already: it goes first, and its replicas' slots with it.
      const old = await readStats().catch(() => undefined)
      const held = old ? old.versions.reduce((n, v) => n + v.replicas.length, 0) : 0
      if (old) {
        status(`Replacing the running ${NAME}…`)
        stopPolling()
        await call(`/api/deployments/${NAME}`, { method: 'DELETE' })
        peers = await fetchWorkers() ?? peers
      }
      const replicas = Math.max(1, Math.max(freeSlots(peers), held))
      const options: ServeOptions = {
        models: [{ version: 'v1', onnx }], inputShape: [DIGIT_PIXELS], inputScale: 1 / 255,
        replicas: { min: replicas, max: replicas }, sloMs: 50, batching: 'aimd', cache: { entries: 10_000 },
      }
      resetFigures()
      status(`Deploying ${NAME}: loading the model on ${plural(replicas, 'replica')}…`)
      await call(`/api/deployments`, { method: 'POST', headers: { 'content-type': 'application/x-msgpack' }, body: await deploymentBody(NAME, options) as BodyInit })
      startPolling()
      // The answer comes once one replica has loaded; the others are a moment behind.
      const until = performance.now() + 60_000
      for (;;) {
        const s = await readStats()
        const up = s.versions.reduce((n, v) => n + v.replicas.length, 0)
        if (up >= replicas || performance.now() > until) break
        status(`Deploying ${NAME}: ${up} of ${plural(replicas, 'replica')} loaded…`)
        await new Promise((r) => setTimeout(r, 300))
      }
      await refreshKinds()
      busyDeploying = false
      status(servingText(await readStats()))
    } catch (e) {
      fail('Deploying failed', e)
    } finally {
      busyDeploying = false
      deployButton.disabled = false
      undeployButton.disabled = !deployed
      setBusy(false)
    }
  }

  async function undeploy(): Promise<void> {
    undeployButton.disabled = true
    deleting = true
    try {
      await stopLoad()
      await call(`/api/deployments/${NAME}`, { method: 'DELETE' })
      stopPolling()
      for (const r of replicaRows.values()) r.gone = true
      renderReplicas(0)
      status(`${NAME} is deleted: its replicas' slots are free for Score and Train again.`)
    } catch (e) {
      fail('Deleting the deployment failed', e)
      undeployButton.disabled = !deployed
    } finally {
      deleting = false
    }
  }

  // ---- the load ----
  async function startLoad(): Promise<void> {
    try {
      const d = await demoDigits()
      if (statusIsError) statusIsError = false
      Object.assign(load, { answered: 0, refused: 0, failed: 0, right: 0, lastError: undefined })
      load.outcomes.clear()
      lastAnswered = 0; lastTick = performance.now()
      loadButton.textContent = 'Stop the load'
      loadButton.setAttribute('aria-pressed', 'true')
      setBusy(true)
      load.start(d, (message) => status(`${plural(load.failed, 'request')} failed under load; the latest: ${message}`, true))
    } catch (e) {
      fail('The load could not start', e)
    }
  }

  async function stopLoad(): Promise<void> {
    if (!load.running) return
    loadButton.disabled = true
    loadButton.textContent = 'Stopping…'
    await load.stop()
    showLoad()
    loadButton.textContent = 'Start the load'
    loadButton.setAttribute('aria-pressed', 'false')
    loadButton.disabled = !deployed
    setBusy(false)
  }

  // ---- drawing and predicting ----
  let asked = 0
  /** Sends one digit; shows the answer unless a later one was sent meanwhile. */
  async function classify(px: Uint8Array, sample?: { index: number; label: number }): Promise<void> {
    const mine = ++asked
    paintDigit($<HTMLCanvasElement>('serve-input'), px, false)
    const prediction = $('serve-prediction'), truth = $('serve-truth')
    prediction.textContent = '…'
    prediction.className = ''
    truth.textContent = sample ? `true digit: ${sample.label} (held-out digit #${fmt(sample.index - HELD_OUT_FROM + 1)})` : 'drawn by hand'
    truth.dataset.sample = sample ? String(sample.index) : ''
    try {
      const started = performance.now()
      const p = await predict([px])
      const ms = performance.now() - started
      if (mine !== asked) return
      const probs = p.outputs[0], k = argmax(probs)
      prediction.textContent = String(k)
      prediction.dataset.sample = sample ? String(sample.index) : 'drawn'
      if (sample) prediction.className = k === sample.label ? 'right' : 'wrong'
      $('serve-latency').textContent = `${fmt(ms, 1)} ms at this page${p.cached ? ', from the cache' : ''} (model ${p.version})`
      $('serve-probs').replaceChildren(...Array.from(probs, (v, i) => {
        const row = document.createElement('div')
        row.className = i === k ? 'top' : ''
        const bar = Object.assign(document.createElement('span'), { className: 'bar' })
        bar.style.width = `${Math.max(0, Math.min(100, 100 * v))}%`
        const track = Object.assign(document.createElement('span'), { className: 'track' })
        track.append(bar)
        row.append(Object.assign(document.createElement('b'), { textContent: String(i) }), track, Object.assign(document.createElement('span'), { className: 'p', textContent: `${fmt(100 * v, 1)}%` }))
        return row
      }))
    } catch (e) {
      if (mine !== asked) return
      prediction.textContent = '?'
      if (e instanceof HttpError && e.status === 404) status(`${NAME} is not deployed: click Deploy first.`, true)
      else fail('The prediction failed', e)
    }
  }

  function clearCanvas(): void {
    ctx.fillStyle = '#000'
    ctx.fillRect(0, 0, canvas.width, canvas.height)
  }

  let drawing = false, lastX = 0, lastY = 0
  const at = (e: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect()
    return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)]
  }
  canvas.addEventListener('pointerdown', (e) => {
    e.preventDefault()
    canvas.setPointerCapture(e.pointerId)
    drawing = true
    ;[lastX, lastY] = at(e)
    ctx.fillStyle = '#fff'
    ctx.beginPath()
    ctx.arc(lastX, lastY, ctx.lineWidth / 2, 0, 2 * Math.PI)
    ctx.fill()
  })
  canvas.addEventListener('pointermove', (e) => {
    if (!drawing) return
    for (const c of e.getCoalescedEvents?.() ?? [e]) {
      const [x, y] = at(c)
      ctx.beginPath()
      ctx.moveTo(lastX, lastY)
      ctx.lineTo(x, y)
      ctx.stroke()
      lastX = x; lastY = y
    }
  })
  const end = () => {
    if (!drawing) return
    drawing = false
    const px = toDigit(canvas)
    if (px) void classify(px)
  }
  canvas.addEventListener('pointerup', end)
  canvas.addEventListener('pointercancel', end)
  ctx.lineWidth = 20
  ctx.lineCap = ctx.lineJoin = 'round'
  ctx.strokeStyle = '#fff'
  clearCanvas()

  let nextSample = Number(hashParam('sample')) || HELD_OUT_FROM
  sampleButton.addEventListener('click', async () => {
    try {
      const d = await demoDigits()
      if (nextSample < HELD_OUT_FROM || nextSample >= d.count) nextSample = HELD_OUT_FROM
      const index = nextSample++
      const px = d.pixels.subarray(index * DIGIT_PIXELS, (index + 1) * DIGIT_PIXELS)
      clearCanvas()
      paintDigit(canvas, px, true)
      await classify(px, { index, label: d.labels[index] })
    } catch (e) {
      fail('Could not load the held-out digits', e)
    }
  })
  $('serve-clear').addEventListener('click', () => {
    clearCanvas()
    asked++
    $('serve-prediction').textContent = '—'
    $('serve-prediction').className = ''
    $('serve-truth').textContent = ''
    $('serve-latency').textContent = ''
    $('serve-probs').replaceChildren()
    paintDigit($<HTMLCanvasElement>('serve-input'), new Uint8Array(DIGIT_PIXELS), false)
  })
  paintDigit($<HTMLCanvasElement>('serve-input'), new Uint8Array(DIGIT_PIXELS), false)

  deployButton.addEventListener('click', () => { void deploy() })
  undeployButton.addEventListener('click', () => { void undeploy() })
  loadButton.addEventListener('click', () => { void (load.running ? stopLoad() : startLoad()) })

  $('serve-curl').textContent = [
    `curl ${location.origin}${ENDPOINT} \\`,
    `  -H "Authorization: Bearer $COLONY_TOKEN" -H 'content-type: application/json' \\`,
    `  -d '{ "inputs": [[0, 0, 0, …784 grey levels, 0 to 255…]] }'`,
  ].join('\n')

  // A deployment made earlier (by this page or `colony serve deploy`) is shown as it is.
  if (token()) {
    void readStats().then(async (s) => {
      await refreshKinds()
      startPolling()
      status(servingText(s))
    }, (e: unknown) => {
      if (!(e instanceof HttpError && e.status === 404)) fail(`Could not ask for ${NAME}`, e)
    })
  }

  return {
    shown: () => {
      batchChart.draw()
      latencyChart.draw()
      if (!deployed && !kindsAt) void refreshKinds()
    },
  }
}
