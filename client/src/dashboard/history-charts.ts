/**
 * Throughput, and the queue with the peers, over time: the coordinator's samples (GET
 * /api/history) on two uPlot charts. The page asks only for samples newer than those it has,
 * and keeps no more than the coordinator does.
 */
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import type { GridHistory } from '@colony-grid/shared'
import { el } from '../ide/cluster.js'

type Column = 'at' | 'tasksPerSecond' | 'queued' | 'running' | 'peers'
const COLUMNS: Column[] = ['at', 'tasksPerSecond', 'queued', 'running', 'peers']
const HEIGHT = 190

const line = (label: string, stroke: string, scale: string, fill?: string): uPlot.Series =>
  ({ label, stroke, width: 1.6, scale, ...(fill ? { fill } : {}), points: { show: false } })

export class HistoryCharts {
  private readonly cols: Record<Column, number[]> = { at: [], tasksPerSecond: [], queued: [], running: [], peers: [] }
  private readonly throughput: uPlot
  private readonly queue: uPlot

  constructor(throughputRoot: HTMLElement, queueRoot: HTMLElement) {
    const width = (root: HTMLElement) => Math.max(280, root.clientWidth)
    const axis = { stroke: '#5b6474', grid: { stroke: '#eef0f4' }, ticks: { stroke: '#e3e7ee' } }
    const tp = el('div', { className: 'chart' })
    throughputRoot.append(tp)
    this.throughput = new uPlot({
      width: width(throughputRoot), height: HEIGHT, legend: { live: true },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [axis, { ...axis, label: 'tasks/s', size: 60 }],
      series: [{}, line('tasks finished per second', '#2f6fde', 'y', 'rgba(47,111,222,0.12)')],
    }, [[], []], tp)
    const q = el('div', { className: 'chart' })
    queueRoot.append(q)
    this.queue = new uPlot({
      width: width(queueRoot), height: HEIGHT, legend: { live: true },
      scales: { tasks: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] }, peers: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [axis, { ...axis, scale: 'tasks', label: 'tasks', size: 60 }, { ...axis, scale: 'peers', label: 'peers', side: 1, size: 60, grid: { show: false } }],
      series: [{}, line('queued', '#e37400', 'tasks'), line('running', '#1e8e3e', 'tasks'), line('peers', '#6b3fa0', 'peers')],
    }, [[], [], [], []], q)
    // Charts follow their boxes' width (a resized window, a panel that wraps).
    new ResizeObserver(() => {
      this.throughput.setSize({ width: width(throughputRoot), height: HEIGHT })
      this.queue.setSize({ width: width(queueRoot), height: HEIGHT })
    }).observe(throughputRoot.parentElement ?? throughputRoot)
  }

  /** The time of the newest sample held: ask for what came after it. */
  get newest(): number | undefined { return this.cols.at.at(-1) }

  add(h: GridHistory): void {
    const newest = this.newest ?? -Infinity
    for (let i = 0; i < h.at.length; i++) {
      if (h.at[i] <= newest) continue // a sample already held
      for (const c of COLUMNS) this.cols[c].push(h[c][i])
    }
    const extra = this.cols.at.length - h.capacity
    if (extra > 0) for (const c of COLUMNS) this.cols[c].splice(0, extra)
    const x = this.cols.at.map((t) => t / 1000) // uPlot's time axis is in seconds
    this.throughput.setData([x, this.cols.tasksPerSecond])
    this.queue.setData([x, this.cols.queued, this.cols.running, this.cols.peers])
  }
}
