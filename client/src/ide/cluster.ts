/**
 * The IDE's cluster panel: the grid in counts, peers, the task timeline of the job it follows,
 * that job's live objects and actors, and the latest jobs.
 *
 * It reads only what it shows, so it costs the same for a job of 100,000 tasks as for one of
 * ten: the grid's counts (/api/summary) and the job's (/api/jobs/:id), a window of the timeline
 * (the latest TIMELINE_WINDOW tasks that started, newest first), and a page of each table.
 * It never fetches a whole task list.
 */
import type { ActorSummary, GridSummary, JobInfo, ObjectSummary, Page, PeerInfo, TaskInfo } from '@colony-grid/shared'
import { bytes, count, duration, plural } from '../words.js'

type Api = <T>(path: string) => Promise<T | undefined>

/** Tasks the timeline shows at most: the latest that started. */
export const TIMELINE_WINDOW = 200
/** Rows of the objects, actors, peers and jobs tables. */
const TABLE_ROWS = 12
const JOB_ROWS = 15

/** An element with its properties and children (the panels build their DOM with it). */
export const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]) => {
  const e: HTMLElementTagNameMap[K] = Object.assign(document.createElement(tag), props)
  e.append(...kids)
  return e
}

function table(head: string[], rows: (string | number)[][]): HTMLTableElement {
  return el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, String(c)))))))
}

/** "12 of 3,400 live objects": what a table shows of what there is. */
const shown = (page: Page<unknown>, one: string, many = `${one}s`) => (page.truncated ? `${count(page.items.length)} of ${count(page.total)} ${many}` : plural(page.total, one, many))
/** A table, or nothing when it has no rows (its caption says so). */
const rowsOf = (head: string[], rows: (string | number)[][]) => (rows.length > 0 ? table(head, rows) : '')

/** A tab advertises its fastest backends as `tfjs-<name>` and `ort-<name>`; a Node peer runs wasm, or native where it opted in. */
export function backendOf(p: PeerInfo): string {
  const tfjs = p.capabilities.find((c) => c.startsWith('tfjs-'))?.slice(5)
  const ort = p.capabilities.find((c) => c.startsWith('ort-'))?.slice(4)
  if (p.kind === 'node') return p.capabilities.includes('ort-native') ? 'tfjs wasm, ort native' : 'wasm'
  return [tfjs && `tfjs ${tfjs}`, ort && `ort ${ort}`].filter(Boolean).join(', ') || '—'
}

/** A job's tasks in words: "100,000 tasks · 0 running · 100,000 waiting · 0 finished". */
function taskCounts(c: JobInfo['tasks']): string {
  const total = Object.values(c).reduce((a, b) => a + b, 0)
  return [plural(total, 'task'), `${count(c.running)} running`, `${count(c.waiting + c.ready)} waiting`, `${count(c.finished)} finished`,
    ...(c.failed ? [`${count(c.failed)} failed`] : []), ...(c.cancelled ? [`${count(c.cancelled)} cancelled`] : [])].join(' · ')
}

export class ClusterPanel {
  private jobId?: string
  /** A refresh under way: a slow coordinator gets one poll at a time, not a pile of them. */
  private busy = false
  /** Asked again meanwhile (another job followed): one more when this one ends. */
  private again = false

  constructor(private readonly root: HTMLElement, private readonly api: Api) {}

  /** Follows this job's tasks, objects and actors. */
  follow(jobId: string | undefined): void { this.jobId = jobId }

  async refresh(): Promise<void> {
    if (this.busy) { this.again = true; return }
    this.busy = true
    try { await this.render() } finally { this.busy = false }
    if (this.again) { this.again = false; await this.refresh() }
  }

  private async render(): Promise<void> {
    const id = this.jobId
    const job = (path: string) => `/api/jobs/${encodeURIComponent(id ?? '')}${path}`
    const [summary, peers, jobs, info, started, objects, actors] = await Promise.all([
      this.api<GridSummary>('/api/summary'),
      this.api<PeerInfo[]>('/api/peers'),
      this.api<Page<JobInfo>>(`/api/jobs?limit=${JOB_ROWS}`),
      id ? this.api<JobInfo>(job('')) : undefined,
      // The timeline's window: the latest tasks that started, newest first (cancelled ones mostly never did).
      id ? this.api<Page<TaskInfo>>(job(`/tasks?state=running,finished,failed&order=desc&limit=${TIMELINE_WINDOW}`)) : undefined,
      id ? this.api<Page<ObjectSummary>>(job(`/objects?limit=${TABLE_ROWS}`)) : undefined,
      id ? this.api<Page<ActorSummary>>(job(`/actors?limit=${TABLE_ROWS}`)) : undefined,
    ])
    // Another job may be followed by now: its parts are drawn by the refresh that asked for it.
    if (id !== this.jobId) return
    const workers = (peers ?? []).filter((p) => p.role === 'worker')
    this.section('peers', el('div', {},
      el('p', { className: 'muted grid-summary' }, summary ? gridLine(summary) : ''),
      table(['Peer', 'Kind', 'Backend', 'Capabilities', 'Load', 'Running', 'Tasks done'],
        workers.slice(0, TABLE_ROWS).map((p) => [p.id, p.kind, backendOf(p), p.capabilities.join(', '), `${Math.round(p.load * 100)}%`, p.running, p.tasksDone]))))
    this.section('timeline', el('div', {},
      el('p', { className: 'muted job-counts' }, info ? `${info.id} (${info.name}, ${info.state}): ${taskCounts(info.tasks)}` : 'Run a job, or pick one under Jobs, to follow it here.'),
      started ? this.timeline(started, workers.map((p) => p.id)) : ''))
    this.section('objects', el('div', {},
      el('p', { className: 'muted' }, objects ? shown(objects, 'live object') : ''),
      rowsOf(['Object', 'State', 'Size', 'Held by'], (objects?.items ?? []).map((o) => [o.id, o.state, bytes(o.size), o.inline ? 'coordinator' : o.holders.join(', ')])),
      el('p', { className: 'muted' }, actors ? shown(actors, 'actor') : ''),
      rowsOf(['Actor', 'Class', 'State', 'Peer', 'Calls waiting'], (actors?.items ?? []).map((a) => [a.id, a.name, a.state, a.peer ?? '—', a.queued]))))
    this.section('history', el('div', {},
      el('p', { className: 'muted' }, jobs ? `${shown(jobs, 'job')}, newest first · click one to follow it` : ''),
      this.history(jobs?.items ?? [])))
  }

  private section(name: string, content: HTMLElement): void {
    this.root.querySelector(`[data-part="${name}"] .body`)?.replaceChildren(content)
  }

  /** The latest jobs; a click follows one (its timeline, objects and actors). */
  private history(jobs: JobInfo[]): HTMLTableElement {
    const t = table(['Job', 'Name', 'State', 'Tasks', 'Took'], jobs.map((j) => [
      j.id, j.name, j.state, count(Object.values(j.tasks).reduce((a, b) => a + b, 0)),
      j.finishedAt ? duration(j.finishedAt - j.createdAt) : '…',
    ]))
    t.querySelectorAll('tbody tr').forEach((row, i) => {
      const j = jobs[i]
      ;(row as HTMLElement).dataset.job = j.id
      row.classList.add('pick')
      if (j.id === this.jobId) row.classList.add('followed')
      row.addEventListener('click', () => { this.follow(j.id); void this.refresh() })
    })
    return t
  }

  /** One row per peer, a bar per task from its start to its end, coloured by state: the window of the latest that started. */
  private timeline(page: Page<TaskInfo>, peers: string[]): HTMLElement {
    const timed = page.items.filter((t) => t.startedAt && t.peer)
    if (timed.length === 0) return el('p', { className: 'muted' }, 'No task has run yet in this job.')
    const now = Date.now()
    let t0 = Infinity, t1 = 0
    for (const t of timed) { t0 = Math.min(t0, t.startedAt!); t1 = Math.max(t1, t.endedAt ?? now) }
    const span = Math.max(1, t1 - t0)
    const rows = [...new Set([...peers, ...timed.map((t) => t.peer!)])].filter((p) => timed.some((t) => t.peer === p))
    const window = page.truncated ? `the latest ${count(timed.length)} of ${count(page.total)} tasks that started` : plural(timed.length, 'task')
    return el('div', { className: 'timeline' },
      ...rows.map((peer) => el('div', { className: 'lane' }, el('span', { className: 'lane-name' }, peer),
        el('div', { className: 'lane-track' }, ...timed.filter((t) => t.peer === peer).map((t) => {
          const bar = el('div', { className: `tl-bar ${t.state}`, title: `${t.name} (${t.id}): ${t.state}, ${((t.endedAt ?? now) - t.startedAt!)} ms` })
          bar.dataset.task = t.id
          bar.style.left = `${(100 * (t.startedAt! - t0)) / span}%`
          bar.style.width = `max(2px, ${(100 * ((t.endedAt ?? now) - t.startedAt!)) / span}%)`
          return bar
        })))),
      el('div', { className: 'muted axis' }, `${(span / 1000).toFixed(2)} s · ${window}`))
  }
}

/** The grid in one line, from /api/summary. */
function gridLine(s: GridSummary): string {
  const workers = s.peers.byRole.worker ?? 0
  return [plural(workers, 'worker'), ...(s.peers.paused ? [`${count(s.peers.paused)} paused`] : []), ...(s.peers.quarantined ? [`${count(s.peers.quarantined)} quarantined`] : []),
    `${count(s.tasks.running)} tasks running`, `${count(s.tasks.waiting + s.tasks.ready)} waiting`, `${count(s.tasksFinishedTotal)} finished since start`].join(' · ')
}
