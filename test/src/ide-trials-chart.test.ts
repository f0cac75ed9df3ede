/** The IDE Trials panel's chart geometry (client/src/ide/trials-chart.ts): scales, ticks and paths, without a page. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chartGeometry, niceStep, spreadLabels, type Box } from '../../client/dist/ide/trials-chart.js'

const box: Box = { width: 540, height: 240, left: 40, right: 20, top: 10, bottom: 30 }
// The plot area: x from 40 to 520 (480 wide), y from 10 (top) to 210 (bottom).

describe('the Trials chart geometry', () => {
  it('maps epoch 1 to the left edge, maxEpochs to the right, and the values onto whole ticks', () => {
    const g = chartGeometry([
      { id: 't1', points: [{ epoch: 1, value: 0.62 }, { epoch: 2, value: 0.81 }, { epoch: 3, value: 0.87 }] },
      { id: 't2', points: [{ epoch: 1, value: 0.55 }] },
    ], box, 5)
    assert.deepEqual(g.plot, { x0: 40, x1: 520, y0: 10, y1: 210 })
    assert.deepEqual(g.xTicks.map((t) => [t.value, t.at]), [[1, 40], [2, 160], [3, 280], [4, 400], [5, 520]])
    // 0.55-0.87 in steps of 0.1 (niceStep(0.32, 4)), widened to 0.5-0.9: 0.5 at the bottom, 0.9 at the top.
    assert.deepEqual(g.yTicks.map((t) => t.value), [0.5, 0.6, 0.7, 0.8, 0.9])
    assert.equal(g.yTicks[0].at, 210)
    assert.equal(g.yTicks.at(-1)!.at, 10)
    // 0.62 is 0.12 of 0.4 above the bottom: 210 - 0.3 * 200 = 150; 0.81: 210 - 0.775 * 200 = 55; 0.87: 25.
    assert.equal(g.lines[0].d, 'M40 150 L160 55 L280 25')
    assert.deepEqual(g.lines[0].end, { x: 280, y: 25 })
    // One point: no line to draw, only its end (the panel puts a dot there).
    assert.equal(g.lines[1].d, 'M40 185')
    assert.deepEqual(g.lines.map((l) => l.id), ['t1', 't2'])
  })

  it('runs the x axis past maxEpochs when a trial reports later, and without maxEpochs to the last epoch', () => {
    const curve = { id: 't1', points: [{ epoch: 1, value: 2 }, { epoch: 7, value: 1 }] }
    assert.equal(chartGeometry([curve], box, 4).xTicks.at(-1)!.value, 7)
    assert.equal(chartGeometry([curve], box).xTicks.at(-1)!.at, 520)
  })

  it('thins the epoch ticks on a long search, to whole epochs', () => {
    const g = chartGeometry([], box, 100)
    assert.ok(g.xTicks.length <= 11, `${g.xTicks.length} ticks`)
    for (const t of g.xTicks) assert.ok(Number.isInteger(t.value))
  })

  it('gives a flat or empty chart a range, and leaves out values that are not finite', () => {
    const flat = chartGeometry([{ id: 't1', points: [{ epoch: 1, value: 0.5 }, { epoch: 2, value: 0.5 }, { epoch: 3, value: Number.NaN }] }], box, 3)
    assert.ok(flat.yTicks[0].value < 0.5 && flat.yTicks.at(-1)!.value > 0.5)
    assert.equal(flat.lines[0].d.split(' L').length, 2)
    assert.ok(!flat.lines[0].d.includes('NaN'))
    const empty = chartGeometry([{ id: 't1', points: [] }], box, 1)
    assert.equal(empty.lines[0].d, '')
    assert.equal(empty.lines[0].end, undefined)
    // One epoch in all: the axis is centred on it, not divided by zero.
    assert.deepEqual(empty.xTicks.map((t) => [t.value, t.at]), [[1, 280]])
    assert.deepEqual([empty.yTicks[0].value, empty.yTicks.at(-1)!.value], [0, 1])
  })

  it('picks steps of 1, 2 or 5 times a power of ten', () => {
    assert.equal(niceStep(0.32, 4), 0.1)
    assert.equal(niceStep(1, 4), 0.2)
    assert.equal(niceStep(30, 4), 10)
    assert.equal(niceStep(9, 8), 1)
    assert.equal(niceStep(0, 4), 1)
  })
})

describe('the Trials chart labels', () => {
  it('keeps labels apart, in their lines\' order, near their ends and inside the plot', () => {
    // 100, 104 and 105 collide; 150 is clear of them.
    assert.deepEqual(spreadLabels([104, 150, 100, 105], 10, 0, 200), [110, 150, 100, 120])
    // Pushed down past the bottom, they are moved up instead.
    assert.deepEqual(spreadLabels([198, 199], 10, 0, 200), [190, 200])
    assert.deepEqual(spreadLabels([1], 10, 5, 200), [5])
    assert.deepEqual(spreadLabels([], 10, 0, 200), [])
  })
})
