/** Serve mode's live charts (uPlot, as Train mode's): figures over time, one point per poll of the deployment. */
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export interface SeriesSpec { label: string; stroke: string; width?: number; dash?: number[]; digits?: number }

/** Lines over seconds since `reset`, made when its element is on screen (a hidden element has no width to size a plot by). */
export class TimeChart {
  private plot?: uPlot
  private readonly times: number[] = []
  private readonly values: number[][]
  private started = performance.now()
  /** The latest points kept: two minutes at two a second. */
  private readonly keep = 240

  constructor(private readonly el: HTMLElement, private readonly yLabel: string, private readonly series: SeriesSpec[], private readonly height = 220) {
    this.values = series.map(() => [])
  }

  private options(width: number): uPlot.Options {
    return {
      width, height: this.height,
      scales: { x: { time: false }, y: { range: (_u, _lo, hi) => [0, Math.max(1, hi) * 1.1] } },
      axes: [{ label: 'seconds' }, { label: this.yLabel, size: 60 }],
      series: [
        { label: 'seconds', value: (_u, v) => (v == null ? '—' : v.toFixed(1)) },
        ...this.series.map((s) => ({ label: s.label, stroke: s.stroke, width: s.width ?? 1.5, dash: s.dash, value: (_u: uPlot, v: number | null) => (v == null ? '—' : v.toFixed(s.digits ?? 1)) })),
      ],
    }
  }

  /** One point of each series, now. */
  add(values: (number | null)[]): void {
    this.times.push((performance.now() - this.started) / 1000)
    values.forEach((v, i) => this.values[i].push(v as number))
    if (this.times.length > this.keep) {
      this.times.shift()
      for (const s of this.values) s.shift()
    }
  }

  draw(): void {
    const data = [this.times, ...this.values] as uPlot.AlignedData
    if (this.plot) { this.plot.setData(data); return }
    if (!this.el.clientWidth) return
    this.plot = new uPlot(this.options(this.el.clientWidth), data, this.el)
  }

  reset(): void {
    this.plot?.destroy()
    this.plot = undefined
    this.times.length = 0
    for (const s of this.values) s.length = 0
    this.started = performance.now()
  }
}
