/** The demo's live chart (uPlot): rows scored per second, in total and by each peer. */
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

const COLORS = ['#2f6fde', '#e8710a', '#1e8e3e', '#a142f4', '#d93025', '#12b5cb', '#f9ab00', '#5f6368']
const WINDOW_MS = 1000

export class ThroughputChart {
  private plot: uPlot
  private readonly peers: string[] = []
  private readonly times: number[] = []
  private readonly series: number[][] = [[]]
  private events: { at: number; peer: string; rows: number }[] = []
  private started = 0

  constructor(private readonly el: HTMLElement) {
    this.plot = new uPlot(this.options(), [[], []], el)
  }

  private options(): uPlot.Options {
    return {
      width: this.el.clientWidth || 640, height: 260,
      scales: { x: { time: false } },
      axes: [{ label: 'seconds' }, { label: 'digits / s', size: 70 }],
      series: [{ label: 'seconds', value: (_u, v) => (v == null ? '—' : v.toFixed(1)) }, { label: 'all peers', stroke: '#1d2430', width: 2 }],
    }
  }

  start(): void {
    this.started = performance.now()
    this.events = []
    this.times.length = 0
    this.series.length = 1
    this.series[0] = []
    this.peers.length = 0
    this.plot.destroy()
    this.plot = new uPlot(this.options(), [[], []], this.el)
  }

  /** A shard finished on `peer`. */
  add(peer: string, rows: number): void { this.events.push({ at: performance.now(), peer, rows }) }

  /** Appends one point per series: the rate over the last second. */
  tick(): void {
    const now = performance.now()
    for (const e of this.events) if (!this.peers.includes(e.peer)) {
      this.peers.push(e.peer)
      this.series.push(new Array<number>(this.times.length).fill(0))
      this.plot.addSeries({ label: e.peer, stroke: COLORS[(this.peers.length - 1) % COLORS.length], width: 1.5 })
    }
    const recent = this.events.filter((e) => e.at > now - WINDOW_MS)
    this.times.push((now - this.started) / 1000)
    this.series[0].push(recent.reduce((n, e) => n + e.rows, 0) * (1000 / WINDOW_MS))
    this.peers.forEach((p, i) => this.series[i + 1].push(recent.filter((e) => e.peer === p).reduce((n, e) => n + e.rows, 0) * (1000 / WINDOW_MS)))
    this.plot.setData([this.times, ...this.series] as uPlot.AlignedData)
  }
}
