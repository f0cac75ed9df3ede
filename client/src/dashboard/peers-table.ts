/**
 * The peers table: a thousand peers or more, so it shows one page of them (filtered, sorted),
 * in a fixed set of rows that a refresh rewrites in place, cell by cell, only where the text
 * changed. Nothing is built per peer but the sort.
 */
import type { PeerInfo } from '@colony-grid/shared'
import { backendOf, el } from '../ide/cluster.js'
import { ago, count, setText } from './format.js'

export const PEERS_PER_PAGE = 50

const SORTS = {
  attention: { label: 'Needs attention', by: (a: PeerInfo, b: PeerInfo) => Number(b.quarantined) - Number(a.quarantined) || a.reputation - b.reputation || b.load - a.load },
  load: { label: 'Load', by: (a: PeerInfo, b: PeerInfo) => b.load - a.load || b.running - a.running },
  tasksDone: { label: 'Tasks done', by: (a: PeerInfo, b: PeerInfo) => b.tasksDone - a.tasksDone },
  reputation: { label: 'Reputation (lowest)', by: (a: PeerInfo, b: PeerInfo) => a.reputation - b.reputation },
  newest: { label: 'Newest', by: (a: PeerInfo, b: PeerInfo) => b.connectedAt - a.connectedAt },
  id: { label: 'Id', by: (a: PeerInfo, b: PeerInfo) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) },
} as const
type SortKey = keyof typeof SORTS

const COLUMNS = ['Peer', 'Kind', 'Backend', 'Load', 'Running', 'Tasks done', 'Reputation', 'Status', 'Joined', 'Address'] as const

/** One row of the table, kept and rewritten as different peers pass through it. */
class PeerRow {
  readonly tr = el('tr')
  private readonly cells = COLUMNS.map(() => el('td'))
  private readonly loadBar = el('span', { className: 'meter-fill' })
  private readonly loadText = el('span')
  private readonly badge = el('span', { className: 'state' })
  private readonly release = el('button', { className: 'small', textContent: 'Release', title: 'Let this peer take work again' })
  private peer?: string

  constructor(onRelease: (peer: string, button: HTMLButtonElement) => void) {
    this.cells[0].className = 'mono'
    this.cells[3].append(el('span', { className: 'meter' }, this.loadBar), this.loadText)
    this.cells[7].append(this.badge, this.release)
    for (const i of [4, 5, 6]) this.cells[i].className = 'num'
    this.cells[9].className = 'mono muted'
    this.release.addEventListener('click', () => { if (this.peer) onRelease(this.peer, this.release) })
    this.tr.append(...this.cells)
  }

  show(p: PeerInfo, now: number): void {
    if (this.peer !== p.id) this.release.disabled = false
    this.peer = p.id
    this.tr.dataset.peer = p.id
    this.tr.hidden = false
    const c = this.cells
    setText(c[0], p.id)
    setText(c[1], p.role === 'worker' ? p.kind : `${p.kind} ${p.role}`)
    setText(c[2], p.role === 'worker' ? backendOf(p) : '—')
    // Load counts tasks sent ahead too, so it may pass 100%; the bar stops there.
    const load = `${Math.round(p.load * 100)}%`, bar = `${Math.min(100, Math.round(p.load * 100))}%`
    if (this.loadBar.style.width !== bar) this.loadBar.style.width = bar
    setText(this.loadText, load)
    setText(c[4], count(p.running))
    setText(c[5], count(p.tasksDone))
    setText(c[6], p.reputation.toFixed(2))
    const status = p.quarantined ? 'quarantined' : p.paused ? 'paused' : 'ok'
    setText(this.badge, status)
    const cls = `state ${status === 'quarantined' ? 'failed' : status === 'paused' ? 'pending' : 'finished'}`
    if (this.badge.className !== cls) this.badge.className = cls
    this.release.hidden = !p.quarantined
    setText(c[8], ago(p.connectedAt, now))
    setText(c[9], p.address ?? '—')
  }

  hide(): void { this.tr.hidden = true; this.peer = undefined; delete this.tr.dataset.peer }
}

export class PeersTable {
  private peers: PeerInfo[] = []
  private filter = ''
  private sort: SortKey = 'attention'
  private page = 0
  private readonly rows: PeerRow[]
  private readonly pager = el('span', { className: 'muted pager-text' })
  private readonly prev = el('button', { className: 'small secondary', textContent: '‹ Prev' })
  private readonly next = el('button', { className: 'small secondary', textContent: 'Next ›' })
  private readonly message = el('p', { className: 'muted empty', textContent: 'Loading…' })

  constructor(root: HTMLElement, onRelease: (peer: string, button: HTMLButtonElement) => void) {
    const filter = el('input', { type: 'search', placeholder: 'Filter: id, kind, backend, address, quarantined…', className: 'filter' })
    filter.addEventListener('input', () => { this.filter = filter.value.trim().toLowerCase(); this.page = 0; this.render() })
    const sort = el('select', {}, ...Object.entries(SORTS).map(([k, s]) => el('option', { value: k, textContent: s.label })))
    sort.addEventListener('change', () => { this.sort = sort.value as SortKey; this.page = 0; this.render() })
    this.prev.addEventListener('click', () => { this.page--; this.render() })
    this.next.addEventListener('click', () => { this.page++; this.render() })
    this.rows = Array.from({ length: PEERS_PER_PAGE }, () => new PeerRow(onRelease))
    const body = el('tbody', {}, ...this.rows.map((r) => r.tr))
    root.append(
      el('div', { className: 'toolbar' }, filter, el('label', { className: 'muted' }, 'Sort ', sort), this.pager, this.prev, this.next),
      el('div', { className: 'scroll' }, el('table', { className: 'grid-table peers' }, el('thead', {}, el('tr', {}, ...COLUMNS.map((h) => el('th', {}, h)))), body)),
      this.message)
    for (const r of this.rows) r.hide()
  }

  update(peers: PeerInfo[]): void {
    this.peers = peers
    this.render()
  }

  private matches(p: PeerInfo, f: string): boolean {
    if (!f) return true
    const status = p.quarantined ? 'quarantined' : p.paused ? 'paused' : 'ok'
    return [p.id, p.kind, p.role, backendOf(p), p.address ?? '', status].some((s) => s.toLowerCase().includes(f))
  }

  private render(): void {
    const shown = this.peers.filter((p) => this.matches(p, this.filter)).sort(SORTS[this.sort].by)
    const pages = Math.max(1, Math.ceil(shown.length / PEERS_PER_PAGE))
    this.page = Math.min(Math.max(0, this.page), pages - 1)
    const from = this.page * PEERS_PER_PAGE
    const slice = shown.slice(from, from + PEERS_PER_PAGE)
    const now = Date.now()
    this.rows.forEach((r, i) => (i < slice.length ? r.show(slice[i], now) : r.hide()))
    const of = this.filter ? `${count(shown.length)} matching of ${count(this.peers.length)}` : count(shown.length)
    setText(this.pager, shown.length ? `${count(from + 1)}–${count(from + slice.length)} of ${of}` : '')
    this.prev.disabled = this.page === 0
    this.next.disabled = this.page >= pages - 1
    setText(this.message, this.peers.length === 0 ? 'No peer is connected. Open the join page in a tab, or start `colony worker`.' : shown.length === 0 ? 'No peer matches the filter.' : '')
    this.message.hidden = shown.length > 0
  }
}
