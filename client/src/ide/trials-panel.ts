/**
 * The IDE's Trials panel: the hyperparameter search a job's main started (`tune`), live: a table of
 * its trials and their learning curves, with a Stop button per running trial and one for the search.
 * The page hands it each search `tune.watch` reports; it shows the latest.
 */
import { decodeValue } from '@colony-grid/shared'
import type { SearchDocument } from '../tuning/search-store.js'
import type { Search, TrialRecord, TuneResult } from '../tuning/index.js'
import { el } from './cluster.js'
import { chartGeometry, spreadLabels, type Box } from './trials-chart.js'

/** What the panel knows of the search's options: the Search object does not carry them. */
interface Options { name?: string; metric?: string; mode?: 'max' | 'min'; maxEpochs?: number; scheduler?: string }

type Request = (path: string) => Promise<Response | undefined>

const BOX: Box = { width: 560, height: 260, left: 46, right: 40, top: 12, bottom: 36 }
const PALETTE = ['#2f6fde', '#e8710a', '#1e8e3e', '#9334e6', '#d01884', '#12a4af', '#b06000', '#3c4a5e']
const STOPPED = '#b8bec9', FAILED = '#e8a29d'
const TERMINAL = new Set(['stopped', 'finished', 'failed'])
const SVG_NS = 'http://www.w3.org/2000/svg'

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG_NS, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

/** Short numbers: 0.00312 as 3.1e-3, 0.91234 as 0.912, 64 as 64. */
export function compact(v: unknown): string {
  if (typeof v !== 'number') return typeof v === 'string' ? v : JSON.stringify(v)
  if (Number.isInteger(v)) return String(v)
  const a = Math.abs(v)
  return a < 0.01 || a >= 1e5 ? v.toExponential(1) : String(Number(v.toPrecision(3)))
}

/**
 * Without the options: the reported key that equals every trial's `last` (the library keeps the
 * metric's last value there); none while two keys still fit.
 */
function guessMetric(trials: TrialRecord[]): string | undefined {
  const reported = trials.filter((t) => t.last !== undefined && t.reports.length)
  if (!reported.length) return undefined
  const fits = Object.keys(reported[0].reports.at(-1)!).filter((k) => k !== 'epoch' && reported.every((t) => t.reports.at(-1)![k] === t.last))
  return fits.length === 1 ? fits[0] : undefined
}

export class TrialsPanel {
  private search?: Search
  private options: Options = {}
  private asked = false
  private result?: TuneResult
  private failure?: string
  private readonly stopsAsked = new Set<string>()
  private readonly rows = new Map<string, { tr: HTMLTableRowElement; key: string }>()
  private poll?: ReturnType<typeof setInterval>
  private frame = false
  private readonly summary = el('span', { className: 'muted' })
  private readonly stopAll = el('button', { className: 'small secondary', textContent: 'Stop search' })
  private readonly metricHead = el('th', {}, 'Metric')
  private readonly tbody = el('tbody')
  private readonly chart = svg('svg', { viewBox: `0 0 ${BOX.width} ${BOX.height}`, role: 'img' }) as SVGSVGElement

  constructor(private readonly root: HTMLElement, private readonly request: Request) {
    root.replaceChildren(
      el('div', { className: 'trials-head' }, el('h2', {}, 'Trials'), this.summary, this.stopAll),
      el('div', { className: 'trials-body' },
        el('div', { className: 'trials-table' }, el('table', {},
          el('thead', {}, el('tr', {}, ...['Trial', 'Config'].map((h) => el('th', {}, h)), this.metricHead, ...['Epoch', 'State', 'Peer', ''].map((h) => el('th', {}, h)))),
          this.tbody)),
        el('figure', { className: 'trials-chart' }, this.chart,
          el('figcaption', { className: 'muted' }, 'A line a trial. Grey dashed: stopped early (by the scheduler or Stop); red dashed: failed; thick: the best so far.'))))
    this.stopAll.addEventListener('click', () => { this.stopAll.disabled = true; this.search?.stop() })
    // One listener for every row's button: rows are replaced as trials change.
    this.tbody.addEventListener('click', (e) => {
      const id = (e.target as HTMLElement).closest<HTMLButtonElement>('button[data-stop]')?.dataset.stop
      if (!id || !this.search) return
      this.stopsAsked.add(id)
      this.search.stop(id)
      this.update()
    })
  }

  /** Shows this search from now on. */
  follow(search: Search): void {
    this.reset()
    this.search = search
    this.root.hidden = false
    // The events bring changes at once; the poll keeps the panel going should the events' iterator stall.
    this.poll = setInterval(() => this.update(), 1000)
    void this.listen(search)
    search.then((r) => { if (this.search === search) { this.result = r; this.options = { ...this.options, metric: r.metric, mode: r.mode }; this.end() } },
      (e: Error) => { if (this.search === search) { this.failure = e?.message ?? String(e); this.end() } })
    this.update()
  }

  /** Empty and hidden, for the next job. */
  reset(): void {
    clearInterval(this.poll)
    this.search = undefined
    this.options = {}
    this.asked = false
    this.result = this.failure = undefined
    this.stopsAsked.clear()
    this.rows.clear()
    this.tbody.replaceChildren()
    this.stopAll.disabled = false
    this.root.hidden = true
  }

  /** Stops the search shown (the job was cancelled). */
  stop(): void { this.search?.stop() }

  private async listen(search: Search): Promise<void> {
    for await (const _ of search) {
      if (this.search !== search) return
      this.update()
    }
  }

  private end(): void {
    clearInterval(this.poll)
    this.stopAll.disabled = true
    this.update()
  }

  /** Its options: from the Search, else (a resumed search that has not read its state yet) from the copy the search keeps in the coordinator. */
  private async describe(search: Search): Promise<void> {
    if (search.metric) { this.options = { name: search.name, metric: search.metric, mode: search.mode, maxEpochs: search.maxEpochs, scheduler: search.scheduler }; return }
    const res = await this.request(`/api/state/tune/${encodeURIComponent(search.id)}`)
    if (!res?.ok || this.search !== search) return
    const doc = decodeValue<SearchDocument>(new Uint8Array(await res.arrayBuffer()))
    const o = doc.options, s = o.scheduler ?? 'fifo'
    this.options = { name: doc.name, metric: o.metric, mode: o.mode, maxEpochs: o.maxEpochs, scheduler: typeof s === 'string' ? s : s.name, ...this.options }
    this.update()
  }

  private update(): void {
    if (this.frame) return
    this.frame = true
    requestAnimationFrame(() => { this.frame = false; this.render() })
  }

  private render(): void {
    const search = this.search
    if (!search) return
    const trials = search.trials().sort((a, b) => a.index - b.index)
    if (!this.asked && trials.length) { this.asked = true; void this.describe(search) }
    const metric = this.options.metric ?? guessMetric(trials)
    const best = this.best(trials)
    const colour = (t: TrialRecord) => (t.state === 'stopped' ? STOPPED : t.state === 'failed' ? FAILED : PALETTE[t.index % PALETTE.length])
    this.renderSummary(search, trials, metric, best)
    this.metricHead.textContent = metric ?? 'Metric'
    this.renderRows(trials, best, colour)
    this.renderChart(trials, metric, best, colour)
  }

  private best(trials: TrialRecord[]): TrialRecord | undefined {
    if (this.result) return trials.find((t) => t.id === this.result!.best.id)
    const sign = this.options.mode === 'max' ? 1 : this.options.mode === 'min' ? -1 : 0
    if (!sign) return undefined
    let best: TrialRecord | undefined
    for (const t of trials) if (t.state !== 'failed' && t.last !== undefined && (!best || sign * (t.last - best.last!) > 0)) best = t
    return best
  }

  private renderSummary(search: Search, trials: TrialRecord[], metric: string | undefined, best: TrialRecord | undefined): void {
    const o = this.options
    const count = (s: string) => trials.filter((t) => t.state === s).length
    const states = ['running', 'pending', 'finished', 'stopped', 'failed'].filter(count).map((s) => `${count(s)} ${s}`).join(', ')
    const parts = [
      o.name ? `${o.name} (${search.id})` : search.id,
      metric && `${metric}${o.mode ? `, ${o.mode}` : ''}`,
      o.scheduler?.toUpperCase(),
      `${trials.length} trial${trials.length === 1 ? '' : 's'}${states ? `: ${states}` : ''}`,
      best && `best ${best.id} ${compact(best.last)}`,
      this.result && `done in ${(this.result.elapsedMs / 1000).toFixed(1)} s, ${this.result.trialEpochs} trial epochs`,
      this.failure && `failed: ${this.failure}`,
    ]
    this.summary.textContent = parts.filter(Boolean).join(' · ')
    this.summary.classList.toggle('error', !!this.failure)
  }

  private renderRows(trials: TrialRecord[], best: TrialRecord | undefined, colour: (t: TrialRecord) => string): void {
    const max = this.options.maxEpochs
    const live = !this.result && !this.failure
    const rows = trials.map((t) => {
      const cells = [
        t.id,
        Object.entries(t.config).map(([k, v]) => `${k} ${compact(v)}`).join(' · '),
        t.last === undefined ? '—' : compact(t.last),
        `${t.reports.at(-1)?.epoch ?? 0}${max ? ` / ${max}` : ''}`,
        t.state,
        t.peer ?? '—',
      ]
      const why = t.error?.message ?? t.reason ?? ''
      const stoppable = live && !TERMINAL.has(t.state)
      const key = JSON.stringify([cells, why, colour(t), t === best, stoppable, this.stopsAsked.has(t.id)])
      const had = this.rows.get(t.id)
      if (had?.key === key) return had.tr
      const [id, config, last, epoch, state, peer] = cells
      const stop = el('button', { className: 'small secondary', textContent: 'Stop', disabled: this.stopsAsked.has(t.id), title: `stop ${t.id} (search.stop('${t.id}'))` })
      stop.dataset.stop = t.id
      const tr = el('tr', { className: t === best ? 'best' : '' },
        el('td', {}, el('span', { className: `swatch${TERMINAL.has(t.state) && t.state !== 'finished' ? ' faded' : ''}` }), id),
        el('td', {}, config), el('td', { className: 'num' }, last), el('td', { className: 'num' }, epoch),
        el('td', {}, el('span', { className: `state ${t.state}`, title: why }, state)),
        el('td', { className: 'peer' }, peer), el('td', {}, ...(stoppable ? [stop] : [])))
      ;(tr.querySelector('.swatch') as HTMLElement).style.background = colour(t)
      tr.dataset.trial = t.id
      this.rows.set(t.id, { tr, key })
      return tr
    })
    if (rows.length !== this.tbody.children.length || rows.some((r, i) => this.tbody.children[i] !== r)) this.tbody.replaceChildren(...rows)
  }

  private renderChart(trials: TrialRecord[], metric: string | undefined, best: TrialRecord | undefined, colour: (t: TrialRecord) => string): void {
    const curves = trials.map((t) => ({
      id: t.id, points: metric ? t.reports.filter((r) => typeof r[metric] === 'number').map((r) => ({ epoch: r.epoch, value: r[metric] })) : [],
    }))
    const g = chartGeometry(curves, BOX, this.options.maxEpochs)
    const { x0, x1, y0, y1 } = g.plot
    const parts: SVGElement[] = [svg('rect', { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: 'plot' })]
    for (const t of g.yTicks) parts.push(svg('line', { x1: x0, x2: x1, y1: t.at, y2: t.at, class: 'grid' }), svg('text', { x: x0 - 6, y: t.at + 4, 'text-anchor': 'end' }, compact(t.value)))
    for (const t of g.xTicks) parts.push(svg('line', { x1: t.at, x2: t.at, y1: y1, y2: y1 + 4, class: 'axis' }), svg('text', { x: t.at, y: y1 + 16, 'text-anchor': 'middle' }, String(t.value)))
    parts.push(svg('text', { x: (x0 + x1) / 2, y: BOX.height - 4, 'text-anchor': 'middle', class: 'label' }, 'epoch'))
    if (!g.lines.some((l) => l.end)) parts.push(svg('text', { x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle', class: 'label' }, metric ? 'waiting for the first report' : 'waiting for the trials\' reports'))
    if (metric) parts.push(svg('text', { transform: `translate(12 ${(y0 + y1) / 2}) rotate(-90)`, 'text-anchor': 'middle', class: 'label' }, metric))
    // Stopped trials first and the best last, so the lines that matter are drawn on top.
    const rank = (t: TrialRecord) => (t === best ? 2 : TERMINAL.has(t.state) && t.state !== 'finished' ? 0 : 1)
    const order = trials.map((t, i) => ({ t, line: g.lines[i] })).sort((a, b) => rank(a.t) - rank(b.t))
    const tags = new Map<number, { t: TrialRecord; y: number }[]>()
    for (const { t, line } of order) {
      if (!line.end) continue
      const kind = `${t.state}${t === best ? ' best' : ''}`
      const tip = `${t.id} (${t.state}): ${metric} ${compact(t.last)} at epoch ${t.reports.at(-1)?.epoch}`
      const path = svg('path', { d: line.d, class: `curve ${kind}`, stroke: colour(t) })
      path.append(svg('title', {}, tip))
      // Hollow for a trial that ended early: one stopped at its first epoch is only this dot.
      const early = rank(t) === 0
      parts.push(path, svg('circle', { cx: line.end.x, cy: line.end.y, r: t === best ? 4 : 3, fill: early ? '#fff' : colour(t), stroke: colour(t), 'stroke-width': early ? 1.5 : 0, class: `dot ${kind}` }))
      if (rank(t) > 0) tags.set(line.end.x, [...(tags.get(line.end.x) ?? []), { t, y: line.end.y }])
    }
    // Trials that end level would write their ids over each other.
    for (const [x, group] of tags) {
      const ys = spreadLabels(group.map((l) => l.y), 12, y0 + 4, y1 - 2)
      group.forEach(({ t }, i) => parts.push(svg('text', { x: x + 6, y: ys[i] + 4, class: `tag${t === best ? ' best' : ''}`, fill: colour(t) }, t.id)))
    }
    this.chart.replaceChildren(...parts)
  }
}
