/**
 * `npm run chaos [-- --json FILE] [-- --quick]`: the chaos scenarios, with their figures.
 * Each runs on real processes (see scenarios.ts); --quick runs small versions. Beside each
 * figure that must stay at 0, `NAME_detects_fault` runs the same scenario with a fault that
 * breaks its property on purpose (shared/src/faults.ts), and is 1 when the figure went bad.
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { authViolations, byzantine, coordinatorRestart, peerChurn, restartFigure, type Faults } from './scenarios.js'
import { fuzz, fuzzFigure } from './fuzz.js'
import { coordinatorFailover, failoverDuplicates, failoverLost } from './failover.js'
import { soak } from './soak.js'

const { values: cli } = parseArgs({ options: { json: { type: 'string' }, quick: { type: 'boolean' } } })
const q = !!cli.quick
const figures: { name: string; value: number; target: string; scenario: string }[] = []
const record = (name: string, value: number, target: string, scenario: string) => {
  figures.push({ name, value, target, scenario })
  console.error(`  ${name}: ${value} (target ${target})`)
}
const faultsOf = (f: Faults) => [...(f.coordinator ?? []).map((n) => `${n} in the coordinator`), ...(f.workers ?? []).map((n) => `${n} in the workers`)].join(' and ')
/** `NAME_detects_fault`: 1 if, with `faults`, the figure left its target of 0. */
const detects = (name: string, faults: Faults, value: number, how = '') => {
  console.error(`  (with ${faultsOf(faults)}: ${name} ${value}${how ? `; ${how}` : ''})`)
  record(`${name}_detects_fault`, value > 0 ? 1 : 0, '1', `the same scenario with the fault ${faultsOf(faults)}: ${name} was ${value}${how ? ` (${how})` : ''}`)
}

async function main(): Promise<void> {
  const started = performance.now()
  const n = q ? 3000 : 10_000
  const every = q ? 700 : 5000
  console.error(`peer churn: ${n} tasks on 3 peers, one killed and replaced every ${every / 1000} s; and a clean run to compare with`)
  const churn = await peerChurn(n, every)
  const what = `${n} tasks on 3 peers, a peer killed with SIGKILL and a new one started every ${every / 1000} s (${churn.kills} kills)`
  record('chaos_lost_results', churn.lost, '0', `${what}: tasks whose result the driver never got`)
  record('chaos_duplicate_results', churn.duplicates, '0', `${what}: results applied beyond one per task (colony_tasks_finished_total ${churn.applied} for ${churn.finished} finished tasks); ${churn.ignoredDuplicateResults} results for tasks already decided were ignored`)
  record('chaos_output_identical', churn.identical ? 1 : 0, '1', `${what}, against a clean run`)
  const lostFault: Faults = { coordinator: ['fail-lost-peer-tasks'] }
  const lostF = await peerChurn(n, every, { faults: lostFault, compare: false })
  detects('chaos_lost_results', lostFault, lostF.lost, `${lostF.kills} kills`)
  const dupFault: Faults = { coordinator: ['apply-duplicate-results'], workers: ['report-results-twice'] }
  const dupF = await peerChurn(n, every, { faults: dupFault, compare: false })
  detects('chaos_duplicate_results', dupFault, dupF.duplicates, `colony_tasks_finished_total ${dupF.applied} for ${dupF.finished} finished tasks`)

  console.error(`coordinator restart: ${n} tasks, kill -9 of the coordinator at 25%, restart on its SQLite file`)
  const restart = await coordinatorRestart(n)
  record('coordinator_restart_lost_results', restartFigure(restart, n), '0',
    `${n} tasks on 3 peers; kill -9 of the coordinator a quarter of the way, then a restart: results lost, wrong, or recorded or applied other than once (${restart.finishedBeforeKill} finished before the kill, ${restart.applied} applied in all)`)
  const restartFault: Faults = { coordinator: ['restart-reapplies'] }
  const restartF = await coordinatorRestart(n, { faults: restartFault })
  detects('coordinator_restart_lost_results', restartFault, restartFigure(restartF, n), `${restartF.applied} results applied for ${n} tasks, ${restartF.recorded} task rows, ${restartF.lost} lost, ${restartF.wrong} wrong`)

  const calls = q ? 100 : 300
  console.error(`failover: ${n} tasks and ${calls} actor calls on 3 peers; two coordinators on one Redis, kill -9 of the leader at 25%`)
  const fo = await coordinatorFailover(n, calls)
  const foWhat = `${n} tasks and ${calls} actor calls on 3 peers, a leader and a hot standby on one Redis (AOF); kill -9 of the leader a quarter of the way (${fo.finishedBeforeKill} tasks finished before)`
  record('failover_takeover_s', Math.round(fo.takeoverS * 100) / 100, '<= 5', `${foWhat}: from the kill to the standby answering as the leader`)
  record('failover_lost_results', failoverLost(fo), '0', `${foWhat}: tasks and actor calls whose result the driver never got (${fo.lost}), wrong values (${fo.wrong}), actor calls the actor never ran (${fo.actorCallsMissing})`)
  record('failover_duplicate_results', failoverDuplicates(fo, n), '0', `${foWhat}: task rows other than one per task (${fo.recorded} for ${n}), results applied beyond one per task (${fo.applied} for ${n}), actor calls run twice (${fo.actorCallsTwice})`)
  const foDupFault: Faults = { coordinator: ['restart-reapplies'] }
  const foDup = await coordinatorFailover(n, calls, { faults: foDupFault })
  detects('failover_duplicate_results', foDupFault, failoverDuplicates(foDup, n), `${foDup.applied} applied for ${n} tasks`)
  const foLostFault: Faults = { coordinator: ['takeover-fails-unfinished'] }
  const foLost = await coordinatorFailover(n, calls, { faults: foLostFault })
  detects('failover_lost_results', foLostFault, failoverLost(foLost), `${foLost.lost} lost, ${foLost.actorCallsMissing} actor calls never ran`)

  // 2,000,000 tasks: each quarter then spans a dozen of the heap's sawtooth cycles, so where the
  // quarters cut them moves the ratio by a percent or so (over 1,000,000 tasks it moved it by ±4%).
  const rounds = q ? 12 : 50, perJob = q ? 2000 : 20_000
  console.error(`soak: ${rounds} rounds of 2 jobs side by side, ${perJob.toLocaleString('en-US')} tasks each, on 3 peers (one killed and replaced every other round), short retention`)
  const sk = await soak(rounds, 2, perJob)
  const skWhat = `${sk.tasks.toLocaleString('en-US')} tasks in ${sk.jobs} jobs (${rounds} rounds of 2 side by side) on 3 peers, one killed and replaced every other round, in ${sk.seconds.toFixed(0)} s; retention: work kept 2 s and for 4 jobs, summaries 4 s and 8 jobs; sampled every 250 ms from the round in which the first job expired and a tenth of the rounds had run (round ${sk.warmRounds + 1})`
  record('soak_tasks', sk.tasks, '>= 1000000 over >= 50 jobs', skWhat)
  record('soak_rss_growth_ratio', Math.round(sk.rssGrowth * 1000) / 1000, '<= 1.05', `${skWhat}: the coordinator's RSS, the last quarter's mean over the first's (after each round: ${sk.rssMb.map((x) => x.toFixed(0)).join(' ')} MB; its V8 heap in use, garbage included: ${sk.heapMb.map((x) => x.toFixed(0)).join(' ')} MB)`)
  record('soak_store_growth_ratio', Math.round(sk.storeGrowth * 1000) / 1000, '<= 1.05', `the same run: the SQLite database file (its WAL, cut back after each retention sweep, breathes with checkpoints and is not counted), same measure (after each round: ${sk.storeMb.map((x) => x.toFixed(1)).join(' ')} MB)`)
  record('soak_lost_results', sk.lost, '0', 'the same run: results the drivers never got, or got wrong')
  const skFault: Faults = { coordinator: ['retention-keeps-everything'] }
  const skF = await soak(12, 2, 2000, { faults: skFault })
  console.error(`  (with ${faultsOf(skFault)}: store ${skF.storeGrowth.toFixed(2)}, rss ${skF.rssGrowth.toFixed(2)})`)
  record('soak_store_growth_ratio_detects_fault', skF.storeGrowth > 1.05 ? 1 : 0, '1', `12 rounds of 2 jobs of 2,000 tasks with the fault ${faultsOf(skFault)}: the store grew ${skF.storeGrowth.toFixed(2)}×, RSS ${skF.rssGrowth.toFixed(2)}×`)

  const b = q ? 60 : 500, big = q ? 10 : 50
  console.error(`byzantine: ${b} tasks and ${big} with results over 64 KiB, replicas: 2, on 2 honest peers and one that always answers wrong (released from each quarantine)`)
  const byz = await byzantine(b, big)
  record('byzantine_wrong_accepted', byz.wrongAccepted + byz.lost, '0',
    `${b} tasks and ${big} with results over 64 KiB (compared by hash), replicas: 2; one of 3 peers always answers wrong, the same size and a true hash for the large ones; it answered ${byz.liarAnswered} replicas (${byz.liarLarge} large): wrong values accepted, wrong large answers no vote counted against it, and tasks without their outcome`)
  record('byzantine_quarantined', byz.quarantined ? 1 : 0, '1', `the same peer (quarantined ${byz.quarantines} times; an operator released it each time)`)
  const byzFault: Faults = { coordinator: ['accept-wrong-replica'] }
  const byzF = await byzantine(b, big, { faults: byzFault })
  detects('byzantine_wrong_accepted', byzFault, byzF.wrongAccepted + byzF.lost, `${byzF.wrongAccepted} wrong accepted (${byzF.wrongLargeAgreed} large)`)

  console.error('auth: hostile volunteers and job authors (tokens, ids, grants, objects, bundles, the sandbox, the protocol, fair share)')
  const auth = await authViolations()
  for (const name of auth.allowed) console.error(`  ALLOWED: ${name}${auth.inconclusive.includes(name) ? ' (inconclusive)' : ''}`)
  record('auth_violations_allowed', auth.allowed.length, '0', `${auth.attempts} attempts by a hostile volunteer (join token, raw WebSocket) and a hostile job author (own submit token), each refused only on the refusal it expects (${auth.inconclusive.length} inconclusive, counted as allowed): see test/src/chaos/attacks.ts`)
  record('auth_attempts', auth.attempts, '>= 20', 'the same run')
  const authFault: Faults = { workers: ['serve-expired-grants'] }
  const authF = await authViolations({ faults: authFault })
  detects('auth_violations_allowed', authFault, authF.allowed.length, `allowed: ${authF.allowed.join(', ') || 'none'}`)

  const frames = q ? 50_000 : 1_000_000, http = q ? 500 : 5000
  console.error(`fuzz: ${frames.toLocaleString('en-US')} mutated and random frames the coordinator is seen to process, then ${http} mutated HTTP requests`)
  const fuzzStarted = performance.now()
  const fz = await fuzz(frames, http)
  if (fz.surpriseNotes.length) console.error(`  surprises: ${fz.surpriseNotes.join('; ')}`)
  record('fuzz_frames', fz.frames, '>= 1000000',
    `WebSocket frames the coordinator was seen to process (a pong after them, or the close they must cause), on ${fz.reconnects + 1} connections: ${fz.validSent} messages the schema takes (they reach a handler) and ${fz.badSent} it refuses (colony_bad_messages_total rose ${fz.badMessages}); ${fz.sent - fz.frames} more sent but not confirmed; and ${fz.httpRequests} HTTP requests answered; ${((performance.now() - fuzzStarted) / 1000).toFixed(0)} s`)
  record('fuzz_crashes', fuzzFigure(fz), '0',
    `the same run: the coordinator exited (${fz.exited ? 1 : 0}), message handlers that threw (${fz.handlerErrors}), HTTP 5xx (${fz.http5xx}) or failed handlers (${fz.httpErrorLines}), requests not answered (${fz.httpNoAnswer}), anything uncaught (${fz.uncaught}); afterwards a job must still run (${fz.healthy ? 'it did' : 'it did not'})`)
  const fuzzFaults: Faults[] = [{ coordinator: ['handler-throws'] }, { coordinator: ['http-handler-throws'] }, { coordinator: ['exit-on-malformed-frame'] }]
  const fuzzMoved: string[] = []
  let fuzzAll = 1
  for (const faults of fuzzFaults) {
    const f = await fuzz(q ? 20_000 : 50_000, q ? 300 : 1000, { faults })
    fuzzMoved.push(`${faultsOf(faults)}: ${fuzzFigure(f)}`)
    if (fuzzFigure(f) === 0) fuzzAll = 0
  }
  console.error(`  (${fuzzMoved.join('; ')})`)
  record('fuzz_crashes_detects_fault', fuzzAll, '1', `smaller runs of the same fuzzing, one per fault: fuzz_crashes was ${fuzzMoved.join('; ')}`)

  console.error(`chaos run: ${((performance.now() - started) / 1000).toFixed(0)} s`)
  console.log('\n| figure | value | target | scenario |')
  console.log('| --- | ---: | --- | --- |')
  for (const f of figures) console.log(`| ${f.name} | ${f.value} | ${f.target} | ${f.scenario} |`)
  if (cli.json) writeFileSync(cli.json, JSON.stringify(figures, null, 2) + '\n')
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? e); process.exit(1) })
