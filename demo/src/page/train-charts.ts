/** Train mode's charts (uPlot): the loss at each step with its smoothed trend, and how stale the steps' weights were. */
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

/** The smoothing of the loss trend, as TensorBoard's slider: each step's loss is noisy, one batch's. */
const SMOOTHING = 0.95

/** A uPlot that is made when its element is on screen: a hidden element has no width to size it by. */
abstract class LazyPlot {
  protected plot?: uPlot
  constructor(protected readonly el: HTMLElement, private readonly height: number) {}
  protected abstract options(width: number, height: number): uPlot.Options
  protected abstract data(): uPlot.AlignedData

  /** Draws the current data; makes the plot first if it can (the element is shown). */
  draw(): void {
    if (!this.plot) {
      if (!this.el.clientWidth) return
      this.plot = new uPlot(this.options(this.el.clientWidth, this.height), this.data(), this.el)
      return
    }
    this.plot.setData(this.data())
  }

  reset(): void {
    this.plot?.destroy()
    this.plot = undefined
  }
}

export class LossChart extends LazyPlot {
  private readonly steps: number[] = []
  private readonly losses: number[] = []
  private readonly smoothed: number[] = []
  private ema = 0

  constructor(el: HTMLElement) { super(el, 260) }

  protected options(width: number, height: number): uPlot.Options {
    return {
      width, height,
      scales: { x: { time: false } },
      axes: [{ label: 'step' }, { label: 'loss', size: 60 }],
      series: [
        { label: 'step' },
        { label: 'loss (one batch)', stroke: '#b8c2d3', width: 1, value: (_u, v) => (v == null ? '—' : v.toFixed(3)) },
        { label: 'smoothed', stroke: '#2f6fde', width: 2, value: (_u, v) => (v == null ? '—' : v.toFixed(3)) },
      ],
    }
  }

  protected data(): uPlot.AlignedData { return [this.steps, this.losses, this.smoothed] }

  add(step: number, loss: number): void {
    this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * loss
    this.steps.push(step)
    this.losses.push(loss)
    // Debiased, so the first steps are not pulled towards the EMA's starting 0.
    this.smoothed.push(this.ema / (1 - SMOOTHING ** this.steps.length))
  }

  override reset(): void {
    super.reset()
    this.steps.length = this.losses.length = this.smoothed.length = 0
    this.ema = 0
  }
}

export class StalenessChart extends LazyPlot {
  private counts: number[] = []

  constructor(el: HTMLElement) { super(el, 200) }

  protected options(width: number, height: number): uPlot.Options {
    return {
      width, height,
      scales: { x: { time: false, range: (_u, lo, hi) => [lo - 0.6, hi + 0.6] }, y: { range: (_u, _lo, hi) => [0, Math.max(1, hi) * 1.1] } },
      axes: [{ label: 'staleness (updates between a step\'s pull and its push)', incrs: [1, 2, 5, 10] }, { label: 'steps', size: 60 }],
      series: [
        { label: 'staleness' },
        { label: 'steps', fill: '#2f6fde99', stroke: '#2f6fde', paths: uPlot.paths.bars!({ size: [0.8, 48] }), points: { show: false } },
      ],
      legend: { show: false },
    }
  }

  protected data(): uPlot.AlignedData { return [this.counts.map((_, i) => i), this.counts] }

  /** The histogram's counts, by staleness 0, 1, 2, … */
  set(counts: readonly number[]): void { this.counts = [...counts] }

  override reset(): void {
    super.reset()
    this.counts = []
  }
}
