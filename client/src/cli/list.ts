/** `colony list`: the jobs the coordinator keeps, newest first, in a table (or JSON). */
import type { Command } from 'commander'
import { Option } from 'commander'
import type { JobInfo, JobState } from '@colony-grid/shared'
import { target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { readPages } from './pages.js'
import { helpAfter, oneShot, subcommand, wholeNumber, withTarget } from './program.js'
import { ago, counts, duration, plural, table, taskTotals } from './words.js'

interface ListOptions { url?: string; token?: string; state?: JobState; limit: number; json?: boolean }

const STATES: JobState[] = ['running', 'finished', 'failed', 'cancelled']

export function registerList(program: Command): void {
  const cmd = subcommand(program, 'list', 'list the jobs: id, name, state, tasks finished of all, age and run time')
    .addOption(new Option('--state <state>', 'only the jobs in this state').choices(STATES))
    .option('--limit <n>', 'at most this many jobs', wholeNumber, 50)
    .option('--json', 'print { items, total } as JSON')
  helpAfter(withTarget(cmd), ['colony list', 'colony list --state running', 'colony list --json --limit 500 | jq \'.items[].id\'']).action(oneShot(cmdList))
}

async function cmdList(opts: ListOptions): Promise<number> {
  const t = target(opts)
  const read = await readPages<JobInfo>(t, '/api/jobs', { query: { state: opts.state }, max: opts.limit })
  // A coordinator from before paging ignores ?state: filter here too.
  const items = read.items.filter((j) => !opts.state || j.state === opts.state).sort((a, b) => b.createdAt - a.createdAt)
  if (opts.json) { console.log(JSON.stringify({ items, total: read.total }, null, 2)); return EXIT.ok }
  if (items.length === 0) {
    console.log(opts.state ? `no ${opts.state} jobs` : 'no jobs yet (colony submit FILE runs one)')
    return EXIT.ok
  }
  const now = Date.now()
  console.log(table(['ID', 'NAME', 'STATE', 'TASKS', 'STARTED', 'TIME'], items.map((j) => {
    const { total, ended } = taskTotals(j.tasks)
    return [j.id, j.name, j.state, `${ended}/${total}`, ago(j.createdAt, now), duration((j.finishedAt ?? now) - j.createdAt)]
  })))
  const byState = counts(Object.fromEntries(STATES.map((s) => [s, items.filter((j) => j.state === s).length])))
  console.log(`${plural(items.length, 'job')} shown (${byState})${read.total > items.length ? ` of ${read.total}: --limit shows more` : ''}`)
  return EXIT.ok
}
