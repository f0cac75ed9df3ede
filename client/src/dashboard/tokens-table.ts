/**
 * The grid's tokens (GET /api/tokens): who may submit and who may join. The operator makes one
 * per user or machine here (its secret is shown once) and revokes them (their peers leave).
 */
import type { TokenInfo } from '@colony-grid/coordinator'
import { el } from '../ide/cluster.js'
import { count, when } from './format.js'
import { ApiProblem, type OperatorApi } from './operator-api.js'

const KINDS = { submit: 'Submit (a user)', join: 'Join (volunteers)', trusted: 'Trusted join (own machines)' } as const

const what = (t: TokenInfo) => (t.operator ? 'operator' : t.trusted ? 'trusted join' : t.role)

export class TokensTable {
  private readonly body = el('tbody', {}, el('tr', {}, el('td', { className: 'muted', colSpan: 6 }, 'Loading…')))
  private readonly made = el('div', { className: 'made', hidden: true })
  private readonly error = el('p', { className: 'error' })

  constructor(root: HTMLElement, private readonly api: OperatorApi) {
    const kind = el('select', {}, ...Object.entries(KINDS).map(([k, label]) => el('option', { value: k, textContent: label })))
    const label = el('input', { placeholder: 'Label: who or what it is for', maxLength: 100 })
    const create = el('button', { className: 'small', textContent: 'Create token' })
    create.addEventListener('click', () => { void this.create(kind.value as keyof typeof KINDS, label.value.trim(), create).then((ok) => { if (ok) label.value = '' }) })
    const head = el('thead', {}, el('tr', {}, ...['Token', 'Kind', 'Label', 'Created', 'State', ''].map((h) => el('th', {}, h))))
    root.append(el('div', { className: 'toolbar' }, kind, label, create), this.made, this.error,
      el('div', { className: 'scroll' }, el('table', { className: 'grid-table' }, head, this.body)))
  }

  async refresh(): Promise<void> {
    const tokens = await this.api.get<TokenInfo[]>('/api/tokens')
    this.body.replaceChildren(...tokens.map((t) => {
      const revoke = el('button', { className: 'small secondary', textContent: 'Revoke', hidden: t.revoked || t.operator })
      revoke.addEventListener('click', () => { void this.revoke(t, revoke) })
      const r = el('tr', {},
        el('td', { className: 'mono' }, t.id), el('td', {}, what(t)), el('td', {}, t.label || '—'), el('td', {}, t.createdAt ? when(t.createdAt) : 'from the start'),
        el('td', {}, el('span', { className: `state ${t.revoked ? 'stopped' : 'finished'}` }, t.revoked ? 'revoked' : 'active')), el('td', {}, revoke))
      r.dataset.token = t.id
      return r
    }))
  }

  private async create(kind: keyof typeof KINDS, label: string, button: HTMLButtonElement): Promise<boolean> {
    button.disabled = true
    this.error.textContent = ''
    try {
      const body = kind === 'trusted' ? { role: 'join', label, trusted: true } : { role: kind, label }
      const made = await this.api.send<TokenInfo & { token: string }>('POST', '/api/tokens', body)
      this.made.replaceChildren(
        el('span', {}, `New ${what(made)} token${made.label ? ` for ${made.label}` : ''}: copy it now, it is not shown again `),
        el('code', {}, made.token),
        el('button', { className: 'small secondary', textContent: 'Done', onclick: () => { this.made.hidden = true } }))
      this.made.hidden = false
      await this.refresh()
      return true
    } catch (e) {
      this.error.textContent = `Could not create the token: ${(e as Error).message}`
      return false
    } finally { button.disabled = false }
  }

  private async revoke(t: TokenInfo, button: HTMLButtonElement): Promise<void> {
    if (!confirm(`Revoke ${what(t)} token ${t.id}${t.label ? ` (${t.label})` : ''}? Its peers are disconnected and its drivers' jobs end.`)) return
    button.disabled = true
    this.error.textContent = ''
    try {
      const done = await this.api.send<{ peersDropped: number }>('DELETE', `/api/tokens/${encodeURIComponent(t.id)}`)
      this.error.textContent = ''
      this.made.replaceChildren(el('span', {}, `Revoked ${t.id}: ${count(done.peersDropped)} peer${done.peersDropped === 1 ? '' : 's'} disconnected.`))
      this.made.hidden = false
      await this.refresh()
    } catch (e) {
      this.error.textContent = `Could not revoke ${t.id}: ${e instanceof ApiProblem ? e.message : String(e)}`
      button.disabled = false
    }
  }
}
