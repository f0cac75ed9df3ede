/** Serving's deployments (GET /api/deployments, mounted by `colony start` and `up`), one row each. */
import { el } from '../ide/cluster.js'
import type { DeploymentStats } from '../serving/types.js'
import { count } from './format.js'
import type { OperatorApi } from './operator-api.js'

const HEAD = ['Deployment', 'Versions', 'Replicas', 'Access', 'Requests', 'Rows', 'Pending', 'Latency p50 / p99', 'Objective', 'Cache hits', 'Rejected']

function row(d: DeploymentStats): HTMLTableRowElement {
  const replicas = d.versions.reduce((n, v) => n + v.replicas.length, 0)
  const rejected = d.rejected.full + d.rejected.badInput + d.rejected.timedOut
  const r = el('tr', {},
    el('td', { className: 'mono' }, d.name),
    el('td', {}, d.versions.map((v) => `${v.version}${d.shares[v.version] !== undefined ? ` (${Math.round(d.shares[v.version] * 100)}%)` : ''}`).join(', ')),
    el('td', { className: 'num' }, count(replicas)),
    el('td', {}, d.access),
    el('td', { className: 'num' }, count(d.requests)),
    el('td', { className: 'num' }, count(d.rows)),
    el('td', { className: 'num' }, count(d.pending)),
    el('td', {}, d.latency.count ? `${d.latency.p50.toFixed(1)} / ${d.latency.p99.toFixed(1)} ms` : '—'),
    el('td', {}, `${d.sloMs} ms`),
    el('td', {}, d.cache.hits + d.cache.misses ? `${Math.round(d.cache.hitRatio * 100)}%` : '—'),
    el('td', { className: 'num' }, count(rejected)))
  r.dataset.deployment = d.name
  return r
}

export class DeploymentsTable {
  private readonly body = el('tbody')
  private readonly table = el('table', { className: 'grid-table' }, el('thead', {}, el('tr', {}, ...HEAD.map((h) => el('th', {}, h)))), this.body)
  private readonly message = el('p', { className: 'muted empty', textContent: 'Loading…' })

  constructor(root: HTMLElement, private readonly api: OperatorApi) {
    this.table.hidden = true
    root.append(el('div', { className: 'scroll' }, this.table), this.message)
  }

  async refresh(): Promise<void> {
    const list = await this.api.optional<DeploymentStats[]>('/api/deployments')
    this.body.replaceChildren(...(list ?? []).map(row))
    this.table.hidden = !list?.length
    this.message.hidden = !!list?.length
    this.message.textContent = list === undefined
      ? 'This coordinator serves no models: serving is mounted by `colony start` and `colony up`.'
      : 'No deployment. Deploy a model with serve() from @colony-grid/client.'
  }
}
