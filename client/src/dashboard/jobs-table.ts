/**
 * The newest jobs, one page of them (GET /api/jobs?limit=&order=desc&state=), with how many
 * there are in all. A job's tasks are never fetched: its counts by state come with the job.
 */
import type { JobInfo, JobState, Page } from '@colony-grid/shared'
import { el } from '../ide/cluster.js'
import { count, duration, when } from './format.js'
import type { OperatorApi } from './operator-api.js'

export const JOBS_SHOWN = 20
const STATES: (JobState | '')[] = ['', 'running', 'finished', 'failed', 'cancelled']
/** The IDE's badge colours (ide.css `.state`) for a job's states. */
const BADGE: Record<JobState, string> = { running: 'running', finished: 'finished', failed: 'failed', cancelled: 'stopped' }

function jobRow(j: JobInfo, now: number): HTMLTableRowElement {
  const t = j.tasks
  const total = t.waiting + t.ready + t.running + t.finished + t.failed + t.cancelled
  const done = t.finished + t.failed + t.cancelled
  const fill = el('span', { className: 'meter-fill' })
  fill.style.width = total ? `${(100 * done) / total}%` : '0%'
  const progress = el('td', {}, el('span', { className: 'meter wide' }, fill), `${count(t.finished)} of ${count(total)}`)
  const note = j.error?.message ?? j.waiting ?? (j.infeasible?.length ? `needs ${j.infeasible[0].needs.join(', ')}` : '')
  const row = el('tr', {},
    el('td', { className: 'mono' }, j.id),
    el('td', { title: note }, j.name, note ? el('div', { className: 'muted note' }, note) : ''),
    el('td', {}, el('span', { className: `state ${BADGE[j.state]}` }, j.state)),
    progress,
    el('td', { className: 'num' }, count(t.running)),
    el('td', { className: 'num' }, count(t.ready + t.waiting)),
    el('td', { className: 'num' }, count(t.failed)),
    el('td', {}, when(j.createdAt)),
    el('td', {}, duration((j.finishedAt ?? now) - j.createdAt) + (j.finishedAt ? '' : ' so far')))
  row.dataset.job = j.id
  return row
}

export class JobsTable {
  private state = ''
  private readonly body = el('tbody')
  private readonly summary = el('span', { className: 'muted' })
  private readonly message = el('p', { className: 'muted empty', textContent: 'Loading…' })

  constructor(root: HTMLElement, private readonly api: OperatorApi, private readonly changed: () => void) {
    const filter = el('select', {}, ...STATES.map((s) => el('option', { value: s, textContent: s || 'All states' })))
    filter.addEventListener('change', () => { this.state = filter.value; this.changed() })
    root.append(
      el('div', { className: 'toolbar' }, el('label', { className: 'muted' }, 'Show ', filter), this.summary),
      el('div', { className: 'scroll' }, el('table', { className: 'grid-table jobs' },
        el('thead', {}, el('tr', {}, ...['Job', 'Name', 'State', 'Tasks finished', 'Running', 'Queued', 'Failed', 'Started', 'Took'].map((h) => el('th', {}, h)))),
        this.body)),
      this.message)
  }

  async refresh(): Promise<void> {
    const state = this.state
    const query = new URLSearchParams({ limit: String(JOBS_SHOWN), order: 'desc', ...(state ? { state } : {}) })
    const page = await this.api.get<Page<JobInfo>>(`/api/jobs?${query}`)
    if (state !== this.state) return // the filter changed while this page was on its way
    const now = Date.now()
    this.body.replaceChildren(...page.items.map((j) => jobRow(j, now)))
    const which = state ? `${state} jobs` : 'jobs'
    this.summary.textContent = page.total ? `newest ${count(page.items.length)} of ${count(page.total)} ${which}` : ''
    this.message.textContent = page.total ? '' : `No ${which} yet. Submit one with \`colony submit\` or from the IDE.`
    this.message.hidden = page.total > 0
  }
}
