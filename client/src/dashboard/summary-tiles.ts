/** The row of figures at the top: GridSummary (GET /api/summary) as tiles, rewritten in place. */
import type { GridSummary } from '@colony-grid/shared'
import { el } from '../ide/cluster.js'
import { count, setText } from './format.js'

interface Tile { title: string; value: (s: GridSummary) => string; detail: (s: GridSummary) => string; alert?: (s: GridSummary) => boolean }

const listed = (counts: Record<string, number>): string =>
  Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${count(n)} ${k}`).join(' · ') || 'none'

const TILES: Record<string, Tile> = {
  peers: { title: 'Peers', value: (s) => count(s.peers.total), detail: (s) => `${listed(s.peers.byKind)}\n${listed(s.peers.byRole)}` },
  quarantined: {
    title: 'Quarantined', value: (s) => count(s.peers.quarantined), detail: (s) => `${count(s.peers.paused)} paused`,
    alert: (s) => s.peers.quarantined > 0,
  },
  queued: { title: 'Tasks queued', value: (s) => count(s.tasks.ready), detail: (s) => `${count(s.tasks.waiting)} waiting for arguments` },
  running: { title: 'Tasks running', value: (s) => count(s.tasks.running), detail: (s) => `${count(s.tasksFinishedTotal)} finished since start` },
  jobs: {
    title: 'Jobs running', value: (s) => count(s.jobs.running),
    detail: (s) => `${count(s.jobs.finished)} finished · ${count(s.jobs.failed)} failed · ${count(s.jobs.cancelled)} cancelled`,
  },
  ready: {
    title: 'Coordinator', value: (s) => (s.ready ? 'Ready' : 'Waiting'),
    detail: (s) => (s.ready ? `${count(s.objects.kept)} objects kept` : 'for its peers to come back after a restart'),
    alert: (s) => !s.ready,
  },
}

export class SummaryTiles {
  private readonly parts = new Map<string, { box: HTMLElement; value: HTMLElement; detail: HTMLElement }>()

  constructor(root: HTMLElement) {
    for (const [key, t] of Object.entries(TILES)) {
      const value = el('div', { className: 'tile-value', textContent: '…' })
      const detail = el('div', { className: 'tile-detail muted' })
      const box = el('div', { className: 'tile' }, el('div', { className: 'tile-title' }, t.title), value, detail)
      box.dataset.tile = key
      root.append(box)
      this.parts.set(key, { box, value, detail })
    }
  }

  update(s: GridSummary): void {
    for (const [key, t] of Object.entries(TILES)) {
      const p = this.parts.get(key)!
      setText(p.value, t.value(s))
      setText(p.detail, t.detail(s))
      p.box.classList.toggle('alert', t.alert?.(s) ?? false)
    }
  }
}
