/**
 * The demo at /demo: this page is a driver (it joins as a peer with the submit token). Score
 * mode puts the digits into the grid as shards and scores them on every worker; Train mode
 * (train-mode.ts) trains the convnet on every worker, then scores the digits it held out; Serve mode
 * (serve-mode.ts) deploys the model behind an HTTP endpoint on the coordinator and calls it.
 */
import { createScoringPool, type Grid, type ModelSource, type PeerInfo, type PoolOptions, type ScoringPool, type ScoringResult } from '@colony-grid/client/browser'
import { HELD_OUT_FROM, type Digits } from '../digits-file.js'
import { digitsReport, type DigitsReport, type PeerRate } from '../report.js'
import { $, demoDigits, demoGrid, fetchBytes, fetchWorkers, fmt, hashParam, pct, rememberToken, setBusy, showStatus } from './common.js'
import { renderConfusion } from './confusion.js'
import { ThroughputChart } from './throughput-chart.js'
import { initServeMode } from './serve-mode.js'
import { initTrainMode } from './train-mode.js'

const joinToken = hashParam('join')
if (joinToken) $<HTMLAnchorElement>('open-worker').href = `/join#token=${joinToken}`
const runButton = $<HTMLButtonElement>('run')
const chart = new ThroughputChart($('chart'))

let workers: PeerInfo[] = []
const backendOf = new Map<string, string>()
const rowsOf = new Map<string, number>()
/** Each peer's rate scoring alone, from this run's calibration. */
const aloneOf = new Map<string, number>()

const status = (text: string, error = false) => showStatus($('status'), text, error)

async function refreshPeers(): Promise<void> {
  const peers = await fetchWorkers()
  if (!peers) return
  workers = peers
  $('peers').querySelector('tbody')!.replaceChildren(...peers.map((p) => {
    const tr = document.createElement('tr')
    const alone = aloneOf.get(p.id)
    const cells = [p.id, p.kind, backendOf.get(p.id) ?? '—', p.capabilities.join(', '), alone ? fmt(alone) : '—', fmt(rowsOf.get(p.id) ?? 0)]
    for (const [i, text] of cells.entries()) {
      const td = document.createElement('td')
      td.textContent = text
      if (i === 5) td.className = 'num'
      if (i === 4) td.className = 'alone'
      if (i === 3) td.className = 'caps'
      if (i === 2) td.className = 'backend'
      tr.append(td)
    }
    return tr
  }))
}

function showResults(r: DigitsReport, result: ScoringResult): void {
  $('results').hidden = false
  $('r-accuracy').textContent = pct(r.accuracy)
  $('r-heldout').textContent = pct(r.heldOutAccuracy)
  $('r-rate').textContent = `${fmt(r.rowsPerSecond)} digits/s`
  $('r-speedup').textContent = r.fastestAlone
    ? `${r.speedup.toFixed(2)}× (${r.peers.length} peers; the fastest alone, ${r.fastestAlone.peer}: ${fmt(r.fastestAlone.rowsPerSecond)} digits/s)`
    : '— (no peer could be timed alone)'
  $('r-time').textContent = `${(result.elapsedMs / 1000).toFixed(2)} s`
  $('r-retries').textContent = String(result.retries)
  renderConfusion($('confusion'), r.confusion)
}

/**
 * Each peer's rate alone. A pool's one actor goes wherever the coordinator places it, so one-actor pools
 * are opened (each holding a CPU slot, idle) until every worker peer has one, or no slot is left. Then
 * each peer's pool scores `rows` digits by itself, after a warm-up, while the others wait.
 */
async function timeEachPeerAlone(g: Grid, model: ModelSource, opts: PoolOptions, d: Digits, peers: PeerInfo[], rows: number): Promise<PeerRate[]> {
  // A named backend runs only on the peers that have it (as the pool asks for them).
  const needs = opts.backend === 'webgpu' ? 'webgpu' : opts.backend === 'native' ? 'ort-native' : undefined
  const able = peers.filter((p) => (p.resources.cpu ?? 0) > 0 && (!needs || p.capabilities.includes(needs)))
  const slots = able.reduce((n, p) => n + (p.resources.cpu ?? 0), 0)
  const wanted = new Set(able.map((p) => p.id))
  const batch = opts.batchSize ?? 250
  const warm = Math.min(d.count, 2 * batch)
  const pools: ScoringPool[] = []
  const poolOf = new Map<string, ScoringPool>()
  try {
    while (poolOf.size < wanted.size && pools.length < slots) {
      const pool = await createScoringPool(g, model, { ...opts, concurrency: 1 })
      pools.push(pool)
      try {
        await pool.ready(1, 20_000)
      } catch (e) {
        if ((e as { code?: string })?.code === 'TIMEOUT') break // no free slot after all (another job holds it)
        throw e // the model does not load
      }
      const peer = (await pool.score({ data: d.pixels.subarray(0, warm * 784), shape: [warm, 784] })).peers[0]?.peer
      if (peer && !poolOf.has(peer)) poolOf.set(peer, pool)
      status(`Timing each peer alone: ${poolOf.size} of ${wanted.size} peers ready…`)
    }
    const rates: PeerRate[] = []
    for (const [peer, pool] of poolOf) {
      status(`Timing each peer alone: ${peer} scores ${fmt(rows)} digits by itself…`)
      const r = await pool.score({ data: d.pixels.subarray(0, rows * 784), shape: [rows, 784] })
      rates.push({ peer, rowsPerSecond: r.rowsPerSecond })
      aloneOf.set(peer, r.rowsPerSecond)
    }
    return rates
  } finally {
    for (const p of pools) p.close()
  }
}

async function run(): Promise<void> {
  let pool: ScoringPool | undefined
  if (!rememberToken()) { status('Paste the submit token first (colony start prints it).', true); return }
  runButton.disabled = true
  setBusy(true)
  $('results').hidden = true
  try {
    status('Loading the digits…')
    const d = await demoDigits()
    status('Connecting to the grid…')
    const grid = await demoGrid()
    const format = $<HTMLSelectElement>('format').value
    const backend = $<HTMLSelectElement>('backend').value
    const batchSize = Number($<HTMLInputElement>('batch').value) || 250
    const model: ModelSource = format === 'onnx' ? { onnx: await fetchBytes('/demo-files/mnist.onnx') } : { tfjs: new URL('/demo-files/model.json', location.href).href }
    const opts: PoolOptions = { batchSize, backend, inputScale: 1 / 255 }
    await refreshPeers()
    const ready = workers.filter((p) => !p.paused && !p.quarantined)
    // The speed-up is over the fastest peer alone: first each peer scores a few thousand digits by itself.
    aloneOf.clear()
    const alone = await timeEachPeerAlone(grid, model, opts, d, ready, Math.min(d.count, Math.max(2000, 4 * batchSize)))
    void refreshPeers()
    // A pool per run, closed after it: its actors hold a CPU slot of every peer, which other jobs need meanwhile.
    pool = await createScoringPool(grid, model, opts)
    // Every free slot loads the model before the clock starts, so the chart shows scoring, not loading.
    // Peers that join later still get an actor, and take shards mid-run.
    const slots = ready.reduce((n, p) => n + (p.resources.cpu ?? 0), 0)
    status(`Loading the model on ${slots} worker slot${slots === 1 ? '' : 's'}…`)
    await pool.ready(Math.max(1, slots), 30_000).catch(() => pool!.ready(1, 60_000))
    rowsOf.clear()
    chart.start()
    // The chart moves four times a second; the peer list (an HTTP request) once a second is enough.
    let ticks = 0
    const ticker = setInterval(() => { chart.tick(); if (++ticks % 4 === 0) void refreshPeers() }, 250)
    status(`Scoring ${fmt(d.count)} digits…`)
    try {
      const result = await pool.score({ data: d.pixels, shape: [d.count, 784] }, {
        onProgress: (p) => {
          chart.add(p.last.peer, p.last.rows)
          for (const c of p.peers) { backendOf.set(c.peer, c.backend); rowsOf.set(c.peer, c.rows) }
          status(`Scoring: ${fmt(p.rowsDone)} of ${fmt(p.rows)} digits on ${p.peers.length} peer${p.peers.length === 1 ? '' : 's'}…`)
        },
      })
      chart.tick()
      const report = digitsReport(result, d.labels, HELD_OUT_FROM, alone)
      showResults(report, result)
      status(`Done: ${fmt(d.count)} digits in ${(result.elapsedMs / 1000).toFixed(2)} s on ${result.peers.length} peers.`)
    } finally {
      clearInterval(ticker)
      void refreshPeers()
    }
  } catch (e) {
    status(`The run failed: ${(e as Error)?.message ?? e}`, true)
    console.error(e)
  } finally {
    pool?.close()
    runButton.disabled = false
    setBusy(false)
  }
}

runButton.addEventListener('click', () => { void run() })

const trainMode = initTrainMode()
const serveMode = initServeMode()
const MODES = ['score', 'train', 'serve'] as const
type Mode = (typeof MODES)[number]
function setMode(mode: Mode): void {
  document.body.dataset.mode = mode
  for (const m of MODES) $(`mode-${m}`).setAttribute('aria-pressed', String(m === mode))
  if (mode === 'train') trainMode.shown()
  if (mode === 'serve') serveMode.shown()
}
for (const m of MODES) $(`mode-${m}`).addEventListener('click', () => setMode(m))
setMode(MODES.find((m) => m === hashParam('mode')) ?? 'score')
void refreshPeers()
setInterval(() => { void refreshPeers() }, 3000)
