/**
 * `colony status`: the grid in words (peers by kind and role, tasks and jobs by state, whether the
 * coordinator is ready), its workers and its latest jobs; `colony status JOB`: one job in words.
 */
import type { Command } from 'commander'
import type { GridSummary, JobInfo, PeerInfo } from '@colony-grid/shared'
import { api, request, target, type Target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { failureText } from './job-end.js'
import { readPages } from './pages.js'
import { helpAfter, oneShot, subcommand, withTarget } from './program.js'
import { ago, bytes, counts, jobTasks, jobTime, plural, table, taskTotals } from './words.js'

interface StatusOptions { url?: string; token?: string; json?: boolean }

/** Workers listed by name; past this, a count (--json has them all). */
const WORKERS_SHOWN = 20
const JOBS_SHOWN = 10

export function registerStatus(program: Command): void {
  const cmd = subcommand(program, 'status', 'the grid in words (peers, tasks, jobs, readiness), or one job\'s state')
    .argument('[job]', 'a job\'s id: its state, tasks, time and error instead')
    .option('--json', 'print JSON: { summary, peers, jobs }, or the job')
  helpAfter(withTarget(cmd), ['colony status', 'colony status j_1a2b3c', 'colony status --json | jq .summary.peers'])
    .action(oneShot(cmdStatus))
}

async function cmdStatus(id: string | undefined, opts: StatusOptions): Promise<number> {
  const t = target(opts)
  if (id) return jobStatus(t, id, opts)
  // One after another: the first finds the coordinator that answers (past dead ones and standbys), the rest go straight to it.
  const summary = await readSummary(t)
  const peers = await api(t, '/api/peers') as PeerInfo[]
  const jobs = await readPages<JobInfo>(t, '/api/jobs', { max: JOBS_SHOWN })
  const latest = jobs.items.sort((a, b) => b.createdAt - a.createdAt)
  const grid = summary ?? summaryFrom(peers, latest)
  if (opts.json) { console.log(JSON.stringify({ summary: grid, peers, jobs: latest }, null, 2)); return EXIT.ok }
  console.log(gridInWords(t.urls[0], grid, summary !== undefined))
  const workers = peers.filter((p) => p.role === 'worker')
  if (workers.length) {
    console.log(`\nworkers:`)
    console.log(indent(table(['ID', 'KIND', 'ADDRESS', 'LOAD', 'DONE', 'CAPABILITIES'], workers.slice(0, WORKERS_SHOWN).map((p) => [
      p.id, `${p.kind}${p.trusted ? ' (trusted)' : ''}${p.quarantined ? ' QUARANTINED' : ''}${p.paused ? ' paused' : ''}`,
      p.address ?? '', p.load.toFixed(2), String(p.tasksDone), p.capabilities.join(', '),
    ]))))
    if (workers.length > WORKERS_SHOWN) console.log(`  … and ${workers.length - WORKERS_SHOWN} more (--json lists them all)`)
  }
  if (latest.length) {
    console.log(`\nlatest jobs (colony list shows more):`)
    console.log(indent(table(['ID', 'NAME', 'STATE', 'TASKS', 'STARTED'], latest.map((j) => {
      const { total, ended } = taskTotals(j.tasks)
      return [j.id, j.name, j.state, `${ended}/${total}`, ago(j.createdAt)]
    }))))
  }
  return EXIT.ok
}

/** GET /api/summary; undefined from a coordinator that has none (the counts are then made from peers and jobs). */
async function readSummary(t: Target): Promise<GridSummary | undefined> {
  const res = await request(t, '/api/summary')
  const body = res.ok ? await res.json().catch(() => undefined) as GridSummary | undefined : undefined
  return body && typeof body === 'object' && typeof body.peers?.total === 'number' ? body : undefined
}

/** What a coordinator without /api/summary tells of the same, from its peers and the jobs read. */
function summaryFrom(peers: PeerInfo[], jobs: JobInfo[]): GridSummary {
  const tally = <K extends string>(keys: K[]): Record<K, number> => Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>
  const byKind: Record<string, number> = {}
  const byRole: Record<string, number> = {}
  for (const p of peers) { byKind[p.kind] = (byKind[p.kind] ?? 0) + 1; byRole[p.role] = (byRole[p.role] ?? 0) + 1 }
  const tasks = tally(['waiting', 'ready', 'running', 'finished', 'failed', 'cancelled'])
  const jobStates = tally(['running', 'finished', 'failed', 'cancelled'])
  for (const j of jobs) {
    jobStates[j.state]++
    for (const [s, n] of Object.entries(j.tasks)) tasks[s as keyof typeof tasks] += n
  }
  return {
    at: Date.now(), ready: true, tasks, jobs: jobStates, tasksFinishedTotal: tasks.finished, objects: { kept: 0, bytes: 0 },
    peers: { total: peers.length, byKind, byRole, quarantined: peers.filter((p) => p.quarantined).length, paused: peers.filter((p) => p.paused).length },
  }
}

function gridInWords(url: string, s: GridSummary, full: boolean): string {
  const roles = s.peers.byRole
  const t = s.tasks
  return [
    `${url}: ${s.ready ? 'ready' : 'not ready yet (a restarted coordinator waits for its peers to come back)'}`,
    `  peers:   ${plural(roles.worker ?? 0, 'worker')}, ${plural(roles.driver ?? 0, 'driver')} (${counts(s.peers.byKind)})` +
      `${s.peers.quarantined ? `, ${s.peers.quarantined} quarantined` : ''}${s.peers.paused ? `, ${s.peers.paused} paused` : ''}`,
    `  tasks:   ${counts({ running: t.running ?? 0, queued: (t.ready ?? 0) + (t.waiting ?? 0), finished: t.finished ?? 0, failed: t.failed ?? 0, cancelled: t.cancelled ?? 0 })}` +
      `${full ? ` (${s.tasksFinishedTotal} finished since the coordinator started)` : ''}`,
    `  jobs:    ${counts(s.jobs)}`,
    ...(full ? [`  objects: ${s.objects.kept} kept, ${bytes(s.objects.bytes)}`] : []),
  ].join('\n')
}

const indent = (text: string) => text.split('\n').map((l) => `  ${l}`).join('\n')

async function jobStatus(t: Target, id: string, opts: StatusOptions): Promise<number> {
  const job = await api(t, `/api/jobs/${encodeURIComponent(id)}`) as JobInfo
  if (opts.json) { console.log(JSON.stringify(job, null, 2)); return EXIT.ok }
  const lines = [`job ${job.id} (${job.name}): ${job.state}, ${jobTime(job)} (started ${ago(job.createdAt)})`, `  tasks: ${jobTasks(job)}`]
  if (job.waiting) lines.push(`  waiting: ${job.waiting}`)
  for (const w of job.infeasible ?? []) lines.push(`  cannot run: ${w.message}`)
  if (job.state === 'finished') lines.push(`  result: ${oneLine(job.result)}`)
  else if (job.state !== 'running') lines.push(`  ${failureText(job).replace(/\n/g, '\n  ')}`)
  if (job.detailsExpired) lines.push('  (its tasks, objects and log expired: only this summary is kept)')
  console.log(lines.join('\n'))
  return EXIT.ok
}

/** A result on one line, cut short: `colony status JOB --json` has all of it. */
function oneLine(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined'
  return text.length > 200 ? `${text.slice(0, 200)}… (--json has all of it)` : text
}
