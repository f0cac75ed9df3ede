/**
 * The geometry of the Trials panel's learning curves (a metric against epoch, a line a trial): the
 * scales, the ticks and the SVG paths. Kept free of the DOM so a unit test can check it.
 */
export interface Curve { id: string; points: { epoch: number; value: number }[] }

/** The chart's size and the margins kept for the axes' labels, in SVG units. */
export interface Box { width: number; height: number; left: number; right: number; top: number; bottom: number }

export interface Tick { value: number; at: number }

export interface ChartGeometry {
  /** The plot area inside the margins. */
  plot: { x0: number; x1: number; y0: number; y1: number }
  xTicks: Tick[]
  yTicks: Tick[]
  /** A line a curve, in the curves' order: its path ('' without points) and its last point, for a dot and a label. */
  lines: { id: string; d: string; end?: { x: number; y: number } }[]
}

const round1 = (n: number) => Math.round(n * 10) / 10
/** Floating point leaves 0.30000000000000004 behind a step of 0.1. */
const clean = (n: number) => Number(n.toPrecision(12))

/** A step of 1, 2 or 5 times a power of ten that cuts `span` into about `count` parts. */
export function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count)
  if (!(raw > 0) || !Number.isFinite(raw)) return 1
  const unit = 10 ** Math.floor(Math.log10(raw))
  const f = raw / unit
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * unit
}

/**
 * The x axis runs from epoch 1 to the later of the last epoch reported and `maxEpochs` (so a search's
 * budget shows from its start); the y axis spans the values reported, widened to whole ticks.
 */
export function chartGeometry(curves: Curve[], box: Box, maxEpochs?: number): ChartGeometry {
  const plot = { x0: box.left, x1: box.width - box.right, y0: box.top, y1: box.height - box.bottom }
  const points = curves.flatMap((c) => c.points).filter((p) => Number.isFinite(p.value) && Number.isFinite(p.epoch))

  let xLo = 1, xHi = Math.max(1, maxEpochs ?? 1, ...points.map((p) => p.epoch))
  if (xHi === xLo) { xLo -= 0.5; xHi += 0.5 }
  const xStep = Math.max(1, Math.round(niceStep(xHi - xLo, 8)))

  let yLo = points.length ? Math.min(...points.map((p) => p.value)) : 0
  let yHi = points.length ? Math.max(...points.map((p) => p.value)) : 1
  if (yHi === yLo) { const pad = Math.abs(yLo) * 0.05 || 0.05; yLo -= pad; yHi += pad }
  const yStep = niceStep(yHi - yLo, 4)
  yLo = clean(Math.floor(yLo / yStep) * yStep)
  yHi = clean(Math.ceil(yHi / yStep) * yStep)

  const x = (e: number) => round1(plot.x0 + ((e - xLo) / (xHi - xLo)) * (plot.x1 - plot.x0))
  const y = (v: number) => round1(plot.y1 - ((v - yLo) / (yHi - yLo)) * (plot.y1 - plot.y0))

  const xTicks: Tick[] = []
  for (let e = Math.ceil(xLo); e <= xHi; e += xStep) xTicks.push({ value: e, at: x(e) })
  const yTicks: Tick[] = []
  for (let i = 0; yLo + i * yStep <= yHi + yStep / 1e6; i++) { const v = clean(yLo + i * yStep); yTicks.push({ value: v, at: y(v) }) }

  const lines = curves.map((c) => {
    const ps = c.points.filter((p) => Number.isFinite(p.value) && Number.isFinite(p.epoch)).map((p) => ({ x: x(p.epoch), y: y(p.value) }))
    return { id: c.id, d: ps.map((p, i) => `${i ? 'L' : 'M'}${p.x} ${p.y}`).join(' '), end: ps[ps.length - 1] }
  })
  return { plot, xTicks, yTicks, lines }
}

/**
 * The labels' heights for lines that end at one x: each as near its line's end as it can be, at least
 * `gap` from the next, inside lo..hi (the order of the lines is kept). The result is in the order given.
 */
export function spreadLabels(ys: number[], gap: number, lo: number, hi: number): number[] {
  const order = ys.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y)
  const at = order.map((o) => o.y)
  for (let k = 1; k < at.length; k++) at[k] = Math.max(at[k], at[k - 1] + gap)
  for (let k = at.length - 1; k >= 0; k--) at[k] = Math.min(at[k], k === at.length - 1 ? hi : at[k + 1] - gap)
  for (let k = 0; k < at.length; k++) at[k] = Math.max(at[k], k === 0 ? lo : at[k - 1] + gap)
  const out = new Array<number>(ys.length)
  order.forEach((o, k) => { out[o.i] = round1(at[k]) })
  return out
}
