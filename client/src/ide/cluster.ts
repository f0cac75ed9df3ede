/** The IDE's cluster panel: peers, the task timeline of the current job, its live objects and actors, the job history. */
import type { ActorSummary, JobInfo, ObjectSummary, PeerInfo, TaskInfo } from '@colony-grid/shared'

type Api = <T>(path: string) => Promise<T | undefined>

/** An element with its properties and children (the panels build their DOM with it). */
export const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]) => {
  const e = Object.assign(document.createElement(tag), props)
  e.append(...kids)
  return e
}

function table(head: string[], rows: (string | number)[][]): HTMLTableElement {
  return el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, String(c)))))))
}

const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`)

/** A tab advertises its fastest backends as `tfjs-<name>` and `ort-<name>`; a Node peer runs wasm, or native where it opted in. */
function backendOf(p: PeerInfo): string {
  const tfjs = p.capabilities.find((c) => c.startsWith('tfjs-'))?.slice(5)
  const ort = p.capabilities.find((c) => c.startsWith('ort-'))?.slice(4)
  if (p.kind === 'node') return p.capabilities.includes('ort-native') ? 'tfjs wasm, ort native' : 'wasm'
  return [tfjs && `tfjs ${tfjs}`, ort && `ort ${ort}`].filter(Boolean).join(', ') || '—'
}

export class ClusterPanel {
  private jobId?: string

  constructor(private readonly root: HTMLElement, private readonly api: Api) {}

  /** Follows this job's tasks, objects and actors. */
  follow(jobId: string | undefined): void { this.jobId = jobId }

  async refresh(): Promise<void> {
    const [peers, jobs] = await Promise.all([this.api<PeerInfo[]>('/api/peers'), this.api<JobInfo[]>('/api/jobs')])
    const id = this.jobId
    const [tasks, objects, actors] = id
      ? await Promise.all([this.api<TaskInfo[]>(`/api/jobs/${id}/tasks`), this.api<ObjectSummary[]>(`/api/jobs/${id}/objects`), this.api<ActorSummary[]>(`/api/jobs/${id}/actors`)])
      : [undefined, undefined, undefined]
    const workers = (peers ?? []).filter((p) => p.role === 'worker')
    this.section('peers', table(['Peer', 'Kind', 'Backend', 'Capabilities', 'Load', 'Running', 'Tasks done'],
      workers.map((p) => [p.id, p.kind, backendOf(p), p.capabilities.join(', '), `${Math.round(p.load * 100)}%`, p.running, p.tasksDone])))
    this.section('timeline', this.timeline(tasks ?? [], workers.map((p) => p.id)))
    const live = objects ?? []
    this.section('objects', el('div', {},
      el('p', { className: 'muted' }, `${live.length} live object${live.length === 1 ? '' : 's'}, ${bytes(live.reduce((n, o) => n + o.size, 0))}`),
      table(['Object', 'State', 'Size', 'Held by'], live.slice(0, 12).map((o) => [o.id, o.state, bytes(o.size), o.inline ? 'coordinator' : o.holders.join(', ')])),
      table(['Actor', 'Class', 'State', 'Peer', 'Calls waiting'], (actors ?? []).map((a) => [a.id, a.name, a.state, a.peer ?? '—', a.queued]))))
    this.section('history', table(['Job', 'Name', 'State', 'Tasks', 'Took'], (jobs ?? []).slice(-15).reverse().map((j) => [
      j.id, j.name, j.state, Object.values(j.tasks).reduce((a, b) => a + b, 0),
      j.finishedAt ? `${((j.finishedAt - j.createdAt) / 1000).toFixed(1)} s` : '…',
    ])))
  }

  private section(name: string, content: HTMLElement): void {
    this.root.querySelector(`[data-part="${name}"] .body`)?.replaceChildren(content)
  }

  /** One row per peer, a bar per task from its start to its end, coloured by state. */
  private timeline(tasks: TaskInfo[], peers: string[]): HTMLElement {
    const timed = tasks.filter((t) => t.startedAt && t.peer)
    if (timed.length === 0) return el('p', { className: 'muted' }, 'No task has run yet in this job.')
    const now = Date.now()
    const t0 = Math.min(...timed.map((t) => t.startedAt!))
    const t1 = Math.max(...timed.map((t) => t.endedAt ?? now))
    const span = Math.max(1, t1 - t0)
    const rows = [...new Set([...peers, ...timed.map((t) => t.peer!)])].filter((p) => timed.some((t) => t.peer === p))
    return el('div', { className: 'timeline' },
      ...rows.map((peer) => el('div', { className: 'lane' }, el('span', { className: 'lane-name' }, peer),
        el('div', { className: 'lane-track' }, ...timed.filter((t) => t.peer === peer).map((t) => {
          const bar = el('div', { className: `tl-bar ${t.state}`, title: `${t.name} (${t.id}): ${t.state}, ${((t.endedAt ?? now) - t.startedAt!)} ms` })
          bar.dataset.task = t.id
          bar.style.left = `${(100 * (t.startedAt! - t0)) / span}%`
          bar.style.width = `max(2px, ${(100 * ((t.endedAt ?? now) - t.startedAt!)) / span}%)`
          return bar
        })))),
      el('div', { className: 'muted axis' }, `${(span / 1000).toFixed(2)} s · ${timed.length} tasks`))
  }
}
