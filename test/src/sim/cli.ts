/**
 * `npm run sim -- --peers 1000 [--tasks N] [--rounds 3] [--processes 4] [--task-ms 0] [--ramp-ms 0]
 *   [--idle-s 10] [--saturate-s 30] [--freeze-s 0] [--url URL --join-token T --submit-token T]`
 *
 * Simulated peers (index.ts) join a coordinator, take no-op tasks and leave, and the figures are
 * printed: the join storm's time, tasks/s with all of them against a few, and, with a coordinator
 * of its own (no --url: one is started with a memory store), its CPU and memory idle and busy, and
 * peers declared dead while alive with the CPU saturated.
 */
import { parseArgs } from 'node:util'
import { runSimFigures } from './figures.js'

const usage = 'usage: npm run sim -- --peers 1000 [--tasks 20000] [--rounds 3] [--processes 4] [--task-ms 0] [--ramp-ms 0] [--idle-s 10] [--saturate-s 30] [--freeze-s 0] [--url URL --join-token T --submit-token T]'

function number(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) { console.error(`--${name} must be a number of 0 or more, not ${v}\n${usage}`); process.exit(2) }
  return n
}

async function main(): Promise<void> {
  let values
  try {
    ({ values } = parseArgs({
      options: {
        peers: { type: 'string' }, tasks: { type: 'string' }, rounds: { type: 'string' }, processes: { type: 'string' }, 'task-ms': { type: 'string' },
        'ramp-ms': { type: 'string' }, 'idle-s': { type: 'string' }, 'saturate-s': { type: 'string' }, 'freeze-s': { type: 'string' },
        url: { type: 'string' }, 'join-token': { type: 'string' }, 'submit-token': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (e) { console.error(`${(e as Error).message}\n${usage}`); process.exit(2) }
  if (values.help) { console.log(usage); return }
  const peers = number(values.peers, 'peers', 1000)
  if (peers < 1) { console.error(`--peers must be at least 1\n${usage}`); process.exit(2) }
  if (values.url && (!values['join-token'] || !values['submit-token'])) { console.error(`--url needs --join-token and --submit-token\n${usage}`); process.exit(2) }
  const target = values.url ? { url: values.url.replace(/\/$/, ''), joinToken: values['join-token']!, submitToken: values['submit-token']! } : undefined
  console.error(`simulating ${peers} peers${target ? ` on ${target.url}` : ' on a coordinator of its own'}`)
  const f = await runSimFigures({
    peers, tasks: number(values.tasks, 'tasks', 20_000), rounds: number(values.rounds, 'rounds', 3), processes: values.processes === undefined ? undefined : number(values.processes, 'processes', 4),
    taskMs: number(values['task-ms'], 'task-ms', 0), rampMs: number(values['ramp-ms'], 'ramp-ms', 0),
    idleSeconds: number(values['idle-s'], 'idle-s', 10), saturateSeconds: number(values['saturate-s'], 'saturate-s', 30),
    freezeSeconds: number(values['freeze-s'], 'freeze-s', 0), target,
  })
  const rows: [string, string][] = [
    [`join of ${f.peers} peers`, `${f.joinSeconds.toFixed(2)} s`],
    [`tasks/s with ${f.fewPeers} peers`, f.tasksPerSecondFew.toFixed(0)],
    [`tasks/s with ${f.peers} peers`, `${f.tasksPerSecond.toFixed(0)} (${(f.tasksPerSecond / f.tasksPerSecondFew).toFixed(2)} × ${f.fewPeers} peers)`],
  ]
  if (f.idleCpuPercent !== undefined) rows.push(['coordinator CPU, idle', `${f.idleCpuPercent.toFixed(1)}% of a core`], ['coordinator memory, idle', `${f.rssMbIdle!.toFixed(0)} MiB`])
  if (f.busyCpuPercent !== undefined) rows.push(['coordinator CPU, busy', `${f.busyCpuPercent.toFixed(0)}% of a core`], ['coordinator memory, busy', `${f.rssMbBusy!.toFixed(0)} MiB`])
  if (f.falseDeaths !== undefined) rows.push(['false deaths, CPU saturated', String(f.falseDeaths)])
  if (f.falseDeathsFrozen !== undefined) rows.push(['false deaths, coordinator frozen', String(f.falseDeathsFrozen)])
  rows.push(['all gone after leaving', `${f.leaveSeconds.toFixed(2)} s`])
  const width = Math.max(...rows.map(([k]) => k.length))
  console.log(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n'))
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? String(e)); process.exit(1) })
