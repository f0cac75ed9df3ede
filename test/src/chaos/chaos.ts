/**
 * `npm run chaos [-- --json FILE] [-- --quick]`: the chaos scenarios, with their figures.
 * Each runs on real processes (see scenarios.ts); --quick runs small versions.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { authViolations, byzantine, coordinatorRestart, fuzz, peerChurn } from './scenarios.js'

const { values: cli } = parseArgs({ options: { json: { type: 'string' }, quick: { type: 'boolean' } } })
const q = !!cli.quick
const figures: { name: string; value: number; target: string; scenario: string }[] = []
const record = (name: string, value: number, target: string, scenario: string) => {
  figures.push({ name, value, target, scenario })
  console.error(`  ${name}: ${value} (target ${target})`)
}

async function main(): Promise<void> {
  const n = q ? 3000 : 10_000
  console.error(`peer churn: ${n} tasks on 3 peers, one killed and replaced every ${q ? 0.7 : 5} s; and a clean run to compare with`)
  const churn = await peerChurn(n, q ? 700 : 5000)
  const what = `${n} tasks on 3 peers, a peer killed with SIGKILL and a new one started every ${q ? 0.7 : 5} s (${churn.kills} kills)`
  record('chaos_lost_results', churn.lost, '0', what)
  record('chaos_duplicate_results', churn.duplicates, '0', `${what}; ${churn.ignoredDuplicateResults} late results from killed peers' tasks were ignored`)
  record('chaos_output_identical', churn.identical ? 1 : 0, '1', `${what}, against a clean run`)

  console.error(`coordinator restart: ${n} tasks, kill -9 of the coordinator at 25%, restart on its SQLite file`)
  const restart = await coordinatorRestart(n)
  record('coordinator_restart_lost_results', restart.lost + restart.wrong + Math.abs(restart.recorded - n), '0', `${n} tasks on 3 peers; kill -9 of the coordinator a quarter of the way, then a restart`)

  const b = q ? 60 : 500
  console.error(`byzantine: ${b} tasks with replicas: 2 on 2 honest peers and one that always answers wrong`)
  const byz = await byzantine(b)
  record('byzantine_wrong_accepted', byz.wrongAccepted + byz.lost, '0', `${b} tasks, replicas: 2; one of 3 peers always answers wrong`)
  record('byzantine_quarantined', byz.quarantined ? 1 : 0, '1', 'the same peer')

  console.error('auth: hostile volunteers and job authors (tokens, ids, grants, objects, bundles, the sandbox, the protocol, fair share)')
  const auth = await authViolations()
  for (const name of auth.allowed) console.error(`  ALLOWED: ${name}`)
  record('auth_violations_allowed', auth.allowed.length, '0', `${auth.attempts} attempts by a hostile volunteer (join token, raw WebSocket) and a hostile job author (own submit token): see test/src/chaos/attacks.ts`)
  record('auth_attempts', auth.attempts, '>= 20', 'the same run')

  const frames = q ? 50_000 : 1_000_000
  console.error(`fuzz: ${frames.toLocaleString('en-US')} mutated and random frames at the WebSocket, then mutated HTTP requests`)
  const started = performance.now()
  const fz = await fuzz(frames, q ? 500 : 5000)
  record('fuzz_frames', fz.frames + fz.httpRequests, '>= 1000000', `${fz.frames} WebSocket frames (${fz.reconnects} reconnects after frames that end the connection) and ${fz.httpRequests} HTTP requests in ${((performance.now() - started) / 1000).toFixed(0)} s`)
  record('fuzz_crashes', fz.crashes + (fz.healthy ? 0 : 1), '0', 'the same run; afterwards a job must still run')

  console.log('\n| figure | value | target | scenario |')
  console.log('| --- | ---: | --- | --- |')
  for (const f of figures) console.log(`| ${f.name} | ${f.value} | ${f.target} | ${f.scenario} |`)
  if (cli.json) writeFileSync(cli.json, JSON.stringify(figures, null, 2) + '\n')
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? e); process.exit(1) })
