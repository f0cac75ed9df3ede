/**
 * The /demo page's Train mode: trains the demo's convnet on every joined peer with `train`
 * (data-parallel, a parameter server, SSP), shows each step as it lands, then scores the
 * held-out digits with the trained model through the scoring path, as Score mode scores.
 */
import { scoreDataset, train, type PeerInfo, type TrainingResult, type TrainingRun, type TrainingStep } from '@colony-grid/client/browser'
import { DEMO_TRAINING, convnetForTraining, heldOutDigits, trainingDigits } from '../convnet.js'
import { DIGIT_PIXELS, DIGITS_SEED } from '../digits-file.js'
import { digitsReport } from '../report.js'
import { $, demoDigits, demoGrid, fetchWorkers, fmt, pct, plural, rememberToken, setBusy, showStatus } from './common.js'
import { renderConfusion } from './confusion.js'
import { LossChart, StalenessChart } from './train-charts.js'

interface WorkerTally { worker: string; peer: string; backend: string; steps: number; samples: number; ms: number; pull: number; compute: number; push: number; staleness: number; since: number; last: number }

/** What the steps of one run add up to, shown four times a second. */
class RunView {
  readonly workers = new Map<string, WorkerTally>()
  readonly staleness: number[] = []
  readonly epochs = new Map<number, { steps: number; loss: number; at: number }>()
  steps = 0
  readonly started = performance.now()

  constructor(readonly loss: LossChart, readonly stale: StalenessChart, readonly kindOf: ReadonlyMap<string, string>) {}

  add(s: TrainingStep): void {
    const now = performance.now()
    this.steps = Math.max(this.steps, s.step)
    this.loss.add(s.step, s.loss)
    while (this.staleness.length <= s.staleness) this.staleness.push(0)
    this.staleness[s.staleness]++
    const w = this.workers.get(s.worker) ?? { worker: s.worker, peer: s.peer, backend: s.backend, steps: 0, samples: 0, ms: 0, pull: 0, compute: 0, push: 0, staleness: 0, since: now - s.ms, last: now }
    w.steps++; w.samples += s.samples; w.ms += s.ms; w.staleness += s.staleness; w.last = now
    w.pull += s.phases.pullMs; w.compute += s.phases.computeMs; w.push += s.phases.pushMs
    this.workers.set(s.worker, w)
    const e = this.epochs.get(s.epoch) ?? { steps: 0, loss: 0, at: 0 }
    e.steps++; e.loss += s.loss; e.at = now - this.started
    this.epochs.set(s.epoch, e)
  }

  render(stepsPerEpoch: number, result?: TrainingResult): void {
    this.loss.draw()
    this.stale.set(this.staleness)
    this.stale.draw()
    const total = this.staleness.reduce((a, b) => a + b, 0)
    const mean = total ? this.staleness.reduce((a, n, s) => a + n * s, 0) / total : 0
    $('staleness-summary').textContent = total
      ? `${plural(total, 'step')}: ${fmt(mean, 2)} updates on average between a step's pull of the weights and its push of the gradient, ${this.staleness.length - 1} at most.`
      : '—'
    const gone = new Set(result?.workers.filter((w) => w.gone).map((w) => w.worker))
    fillRows($('train-workers'), [...this.workers.values()].map((w) => ({
      cells: [w.worker, w.peer, this.kindOf.get(w.peer) ?? '—', w.backend, fmt(w.steps), fmt(w.samples),
        fmt(w.samples / Math.max(1e-3, (w.last - w.since) / 1000)), fmt(w.ms / w.steps), [w.pull, w.compute, w.push].map((t) => fmt(t / w.steps)).join(' · '), fmt(w.staleness / w.steps, 2)],
      numeric: 4, cls: gone.has(w.worker) ? 'gone' : undefined, classes: { 1: 'peer' },
    })))
    // The run's history, once there is one: the epochs' mean losses and the accuracy where the run measured it.
    const rows = result
      ? result.history.map((h) => [String(h.epoch), fmt(stepsPerEpoch), fmt(h.loss, 4), h.accuracy === undefined ? '—' : pct(h.accuracy), `${fmt(h.ms / 1000, 1)} s`])
      : [...this.epochs.entries()].sort(([a], [b]) => a - b).map(([epoch, e]) => [String(epoch), `${fmt(e.steps)} of ${fmt(stepsPerEpoch)}`, fmt(e.loss / e.steps, 4), '—', `${fmt(e.at / 1000, 1)} s`])
    fillRows($('train-epochs'), rows.map((cells) => ({ cells, numeric: 1 })))
  }
}

/** Replaces a table's body: cells from `numeric` on are right-aligned numbers. */
function fillRows(table: HTMLElement, rows: { cells: string[]; numeric: number; cls?: string; classes?: Record<number, string> }[]): void {
  table.querySelector('tbody')!.replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr')
    if (r.cls) tr.className = r.cls
    tr.append(...r.cells.map((text, i) => Object.assign(document.createElement('td'), { textContent: text, className: [i >= r.numeric ? 'num' : '', r.classes?.[i] ?? ''].join(' ').trim() })))
    return tr
  }))
}

/**
 * Every free CPU slot is a worker or a shard. The shards go on Node peers where they have the slots:
 * a tab can be closed at any moment, and a shard that comes back from its checkpoint costs a pause.
 */
function plan(peers: PeerInfo[]): { workers: number; shards: number; slots: number; shardsOn?: string[] } {
  const free = (p: PeerInfo) => Math.max(0, (p.resources.cpu ?? 0) - p.running)
  const ready = peers.filter((p) => !p.paused && !p.quarantined)
  const slots = ready.reduce((n, p) => n + free(p), 0)
  const shards = Math.max(1, Math.min(DEMO_TRAINING.shards, slots - 1))
  const nodeSlots = ready.filter((p) => p.capabilities.includes('node')).reduce((n, p) => n + free(p), 0)
  return { workers: Math.max(1, slots - shards), shards, slots, shardsOn: nodeSlots >= shards ? ['node'] : undefined }
}

export function initTrainMode(): { shown(): void } {
  const runButton = $<HTMLButtonElement>('train-run'), stopButton = $<HTMLButtonElement>('train-stop')
  const loss = new LossChart($('loss-chart')), stale = new StalenessChart($('staleness'))
  const status = (text: string, error = false) => showStatus($('train-status'), text, error)
  const { batchSize, epochs, optimizer, staleness, shards, seed, wire } = DEMO_TRAINING
  $('train-settings').textContent = `Adam, lr ${optimizer.lr}, halved each epoch; batches of ${batchSize}; ${epochs} epochs; SSP, staleness ${staleness}; ${shards} shards; ${wire} on the wire; seed ${seed}`
  let current: TrainingRun | undefined

  async function run(): Promise<void> {
    if (!rememberToken()) { status('Paste the submit token first (colony start prints it).', true); return }
    runButton.disabled = true
    setBusy(true)
    $('train-results').hidden = true
    let ticker: ReturnType<typeof setInterval> | undefined
    try {
      status('Loading the digits…')
      const d = await demoDigits()
      const tr = trainingDigits(d, DIGITS_SEED), ho = heldOutDigits(d)
      status('Connecting to the grid…')
      const grid = await demoGrid()
      const peers = await fetchWorkers() ?? []
      const p = plan(peers)
      if (p.slots < 2) throw new Error(`training needs 2 free CPU slots, one for a worker and one for a parameter-server shard, and the grid has ${p.slots}: open another worker tab`)
      const stepsPerEpoch = Math.ceil(tr.count / batchSize), total = stepsPerEpoch * epochs
      loss.reset(); stale.reset()
      const view = new RunView(loss, stale, new Map(peers.map((q) => [q.id, q.kind === 'browser' ? 'tab' : q.kind])))
      view.render(stepsPerEpoch)
      status(`Loading the model on ${plural(p.workers, 'training worker')} and ${plural(p.shards, 'parameter-server shard')}…`)
      current = train(grid, {
        model: convnetForTraining(DIGITS_SEED),
        data: { x: { data: tr.pixels, shape: [tr.count, DIGIT_PIXELS] }, y: tr.labels },
        validation: { x: { data: ho.pixels, shape: [ho.count, DIGIT_PIXELS] }, y: ho.labels },
        inputScale: 1 / 255, optimizer, batchSize, epochs, seed, wire,
        // Every worker loaded before the first step, so each joined peer trains from the start.
        workers: { min: p.workers, max: p.workers }, consistency: { mode: 'ssp', staleness }, ps: { shards: p.shards, capabilities: p.shardsOn },
        onProgress: (s) => {
          view.add(s)
          status(`Training: step ${fmt(s.step)} of ${fmt(total)} (epoch ${s.epoch} of ${epochs}) on ${plural(view.workers.size, 'worker')}…`)
        },
      })
      stopButton.disabled = false
      ticker = setInterval(() => view.render(stepsPerEpoch), 250)
      const result = await current
      clearInterval(ticker)
      stopButton.disabled = true
      view.render(stepsPerEpoch, result)
      showTraining(result)
      status(`Scoring the ${fmt(ho.count)} held-out digits with the trained model…`)
      const scored = await scoreDataset(grid, { data: ho.pixels, shape: [ho.count, DIGIT_PIXELS] }, { tfjs: result.modelFiles }, { inputScale: 1 / 255, batchSize: 250 })
      // The held-out digits are all this scoring's rows: its accuracy is theirs.
      const report = digitsReport(scored, ho.labels, 0)
      $('train-accuracy').textContent = pct(report.accuracy)
      renderConfusion($('train-confusion'), report.confusion)
      const onPeers = new Set(result.workers.map((w) => w.peer)).size
      status(`Done: trained in ${fmt(result.elapsedMs / 1000, 1)} s by ${plural(result.workers.length, 'worker')} on ${plural(onPeers, 'peer')}; ${pct(report.accuracy)} of the ${fmt(ho.count)} held-out digits right.`)
    } catch (e) {
      status(`The run failed: ${(e as Error)?.message ?? e}`, true)
      console.error(e)
    } finally {
      clearInterval(ticker)
      current = undefined
      runButton.disabled = false
      stopButton.disabled = true
      setBusy(false)
    }
  }

  function showTraining(r: TrainingResult): void {
    $('train-results').hidden = false
    $('train-accuracy').textContent = '…'
    $('train-eval').textContent = r.accuracy === undefined ? '—' : pct(r.accuracy)
    $('train-time').textContent = `${fmt(r.elapsedMs / 1000, 1)} s (${fmt(r.steps)} steps)`
    $('train-rate').textContent = `${fmt(r.samplesPerSecond)} samples/s`
    $('train-spread').textContent = `${r.maxClockSpread} steps (SSP, staleness ${staleness})`
    $('train-bytes').textContent = `${fmt(r.bytes / 1e6, 1)} MB (${fmt(r.bytes / r.samples / 1000, 1)} KB a sample)`
    $('train-retries').textContent = String(r.retries)
    $('train-confusion').replaceChildren()
  }

  runButton.addEventListener('click', () => { void run() })
  stopButton.addEventListener('click', () => current?.cancel())
  return { shown: () => { loss.draw(); stale.draw() } }
}
