/**
 * The operator's dashboard at /dashboard: the grid's figures, its throughput and queue over time,
 * its peers, jobs, deployments and tokens. It reads only summaries and pages (never a job's tasks,
 * never every job), so it stays quick on a grid of a thousand peers and jobs of 100,000 tasks.
 */
import { PAGE_LIMITS, type GridHistory, type GridSummary, type Page, type PeerInfo } from '@colony-grid/shared'
import { DeploymentsTable } from './deployments-table.js'
import { when } from './format.js'
import { HistoryCharts } from './history-charts.js'
import { JobsTable } from './jobs-table.js'
import { ApiProblem, operatorApi } from './operator-api.js'
import { PeersTable } from './peers-table.js'
import { Poller } from './poller.js'
import { SummaryTiles } from './summary-tiles.js'
import { TokensTable } from './tokens-table.js'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const TOKEN_KEY = 'colony.operatorToken'

// The token comes in the link `colony start` prints (#token=…) or was typed here before; it stays in this browser.
const tokenInput = $<HTMLInputElement>('token')
tokenInput.value = new URLSearchParams(location.hash.slice(1)).get('token') ?? localStorage.getItem(TOKEN_KEY) ?? ''
const api = operatorApi(() => tokenInput.value.trim())

const tiles = new SummaryTiles($('tiles'))
const charts = new HistoryCharts($('throughput'), $('queue'))
const peers = new PeersTable($('peers'), (peer, button) => { void release(peer, button) })
const jobs = new JobsTable($('jobs'), api, () => { void jobsPoll.now() })
const deployments = new DeploymentsTable($('deployments'), api)
const tokens = new TokensTable($('tokens'), api)

/** What went wrong last, per part: the status line shows the first, and clears when all went well. */
const problems = new Map<string, string>()
function report(part: string, error?: unknown): void {
  if (error instanceof ApiProblem && error.kind === 'auth') { lock(error.message); return }
  if (error) problems.set(part, (error as Error).message ?? String(error))
  else problems.delete(part)
  const status = $('status')
  const first = problems.values().next().value
  status.textContent = first ?? `updated ${when(Date.now())}`
  status.classList.toggle('error', first !== undefined)
}

/** Every connected peer (the table sorts and filters them here): a plain list, or pages followed to the end should /api/peers page. */
async function allPeers(): Promise<PeerInfo[]> {
  const all: PeerInfo[] = []
  let cursor: string | undefined
  do {
    const body = await api.get<PeerInfo[] | Page<PeerInfo>>(`/api/peers?limit=${PAGE_LIMITS.max}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
    if (Array.isArray(body)) return body
    all.push(...body.items)
    cursor = body.next
  } while (cursor)
  return all
}

/** The summary's figures in the tiles; a coordinator without /api/summary has none to show. */
async function refreshSummary(): Promise<void> {
  const summary = await api.optional<GridSummary>('/api/summary')
  if (summary) tiles.update(summary)
  $('tiles').hidden = !summary
}

/** Only the samples newer than those the charts have. */
async function refreshHistory(): Promise<void> {
  const since = charts.newest
  charts.add(await api.get<GridHistory>(`/api/history${since === undefined ? '' : `?since=${since}`}`))
}

// Each part on a beat of its own: a slow answer (the peers' list is the largest) holds up no other.
const summaryPoll = new Poller(2000, refreshSummary, (e) => report('summary', e))
const peersPoll = new Poller(2000, async () => peers.update(await allPeers()), (e) => report('peers', e))
const jobsPoll = new Poller(3000, () => jobs.refresh(), (e) => report('jobs', e))
const pollers = [
  summaryPoll, peersPoll, jobsPoll,
  new Poller(2000, refreshHistory, (e) => report('history', e)),
  new Poller(10_000, () => deployments.refresh(), (e) => report('deployments', e)),
  new Poller(15_000, () => tokens.refresh(), (e) => report('tokens', e)),
]

async function release(peer: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true
  try {
    await api.send('POST', `/api/peers/${encodeURIComponent(peer)}/release`)
    await Promise.all([peersPoll.now(), summaryPoll.now()])
  } catch (e) {
    button.disabled = false
    report('release', new Error(`Could not release ${peer}: ${(e as Error).message}`))
  }
}

/** No good token: the panels stop, and the gate says why and what to paste. */
function lock(why: string): void {
  for (const p of pollers) p.stop()
  problems.clear()
  $('gate-message').textContent = why
  $('gate').hidden = false
  $('board').hidden = true
  $('status').textContent = ''
}

/** Checks the token on a route only the operator may read, then opens the dashboard. */
async function unlock(): Promise<void> {
  try {
    await api.get('/api/tokens')
  } catch (e) {
    lock(e instanceof Error ? e.message : String(e))
    return
  }
  localStorage.setItem(TOKEN_KEY, tokenInput.value.trim())
  $('gate').hidden = true
  $('board').hidden = false
  for (const p of pollers) p.start()
}

$('token-form').addEventListener('submit', (e) => { e.preventDefault(); void unlock() })
void unlock()
