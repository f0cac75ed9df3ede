/**
 * Small, fast versions of each `npm run chaos` scenario (test/src/chaos/scenarios.ts), with their
 * targets asserted; and the checks of those checks: each scenario again with a fault that breaks
 * its property on purpose (shared/src/faults.ts), and its figure seen to go bad.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { authViolations, byzantine, coordinatorRestart, peerChurn, restartFigure } from './chaos/scenarios.js'
import { fuzz, fuzzFigure } from './chaos/fuzz.js'
import { startProc } from './harness.js'

describe('chaos, small', () => {
  it('peer churn: peers killed and replaced mid-job lose no result, apply none twice, and change no byte of the output', async () => {
    const f = await peerChurn(2000, 500)
    assert.ok(f.kills >= 1, `at least one peer was killed mid-job (${f.kills})`)
    assert.deepEqual([f.lost, f.duplicates, f.identical], [0, 0, true])
    assert.deepEqual([f.applied, f.finished], [2000, 2000], 'colony_tasks_finished_total and the finished tasks')
  })

  it('coordinator kill -9 and restart: no result lost, none recorded or applied twice, none wrong', async () => {
    const r = await coordinatorRestart(1500)
    assert.ok(r.finishedBeforeKill > 0 && r.finishedBeforeKill < 1500, `${r.finishedBeforeKill} finished before the kill: it came mid-job`)
    assert.deepEqual({ ...r, finishedBeforeKill: 0 }, { lost: 0, recorded: 1500, wrong: 0, applied: 1500, finishedBeforeKill: 0 })
  })

  it('a hostile peer: no wrong answer accepted with replicas: 2, small or large (by hash), and it is quarantined', async () => {
    const b = await byzantine(30, 6)
    assert.ok(b.liarLarge >= 1, `the liar answered large tasks too (${b.liarLarge})`)
    assert.deepEqual([b.wrongAccepted, b.lost, b.quarantined], [0, 0, true])
  })

  it('auth: every violation attempt is refused, each with the refusal it expects', async () => {
    const r = await authViolations()
    assert.deepEqual(r.allowed, [])
    assert.ok(r.attempts >= 20, `${r.attempts} attempts`)
  })

  it('fuzzed frames and requests: the coordinator processes them all, does not crash, and still runs jobs', async () => {
    const f = await fuzz(20_000, 200)
    assert.ok(f.frames >= 20_000, `${f.frames} frames confirmed processed`)
    assert.deepEqual([f.surprises, f.sent], [0, f.frames], f.surpriseNotes.join('; '))
    assert.ok(f.validSent > 10_000 && f.badSent > 100, `${f.validSent} messages the schema takes, ${f.badSent} it refuses`)
    assert.ok(f.badMessages >= f.badSent, `colony_bad_messages_total rose ${f.badMessages}, for ${f.badSent} refused messages`)
    assert.ok(f.httpRequests === 200, `${f.httpRequests} HTTP requests answered`)
    assert.deepEqual([f.crashes, f.healthy], [0, true])
  })
})

describe('chaos, with faults: each figure goes bad when its property is broken', () => {
  it('a coordinator that fails a lost peer\'s tasks instead of retrying them: chaos_lost_results', async () => {
    const f = await peerChurn(1500, 400, { faults: { coordinator: ['fail-lost-peer-tasks'] }, compare: false })
    assert.ok(f.kills >= 1 && f.lost > 0, `${f.lost} lost in ${f.kills} kills`)
  })

  it('a peer that reports each result twice: the coordinator ignores the copies; one that applies them: chaos_duplicate_results', async () => {
    const twice = await peerChurn(1000, 400, { faults: { workers: ['report-results-twice'] }, compare: false })
    assert.ok(twice.ignoredDuplicateResults >= 1000 - twice.kills * 64, `${twice.ignoredDuplicateResults} copies ignored`)
    assert.equal(twice.duplicates, 0)
    const applied = await peerChurn(1000, 400, { faults: { coordinator: ['apply-duplicate-results'], workers: ['report-results-twice'] }, compare: false })
    assert.ok(applied.duplicates > 0, `${applied.duplicates} applied twice (colony_tasks_finished_total ${applied.applied} for ${applied.finished})`)
  })

  it('a restart that applies finished results again: coordinator_restart_lost_results (the task rows alone would not show it)', async () => {
    const r = await coordinatorRestart(1000, { faults: { coordinator: ['restart-reapplies'] } })
    assert.deepEqual([r.lost, r.wrong, r.recorded], [0, 0, 1000], 'the driver\'s values and the task rows look right')
    assert.ok(r.applied > 1000 && restartFigure(r, 1000) > 0, `${r.applied} applied`)
  })

  it('a quorum of one: byzantine_wrong_accepted', async () => {
    const b = await byzantine(30, 6, { faults: { coordinator: ['accept-wrong-replica'] } })
    assert.ok(b.wrongAccepted > 0 && b.wrongLargeAgreed > 0, `${b.wrongAccepted} wrong accepted, ${b.wrongLargeAgreed} of them large`)
  })

  it('a holder that serves on expired grants: auth_violations_allowed', async () => {
    const r = await authViolations({ faults: { workers: ['serve-expired-grants'] } })
    assert.deepEqual(r.allowed, ['an expired grant'])
  })

  it('a message handler that throws, an HTTP handler that throws, a coordinator that exits: fuzz_crashes', async () => {
    const thrown = await fuzz(5000, 20, { faults: { coordinator: ['handler-throws'] } })
    assert.ok(thrown.handlerErrors > 0 && fuzzFigure(thrown) > 0, `${thrown.handlerErrors} handler errors`)
    const http = await fuzz(2000, 150, { faults: { coordinator: ['http-handler-throws'] } })
    assert.ok(http.http5xx > 0 && fuzzFigure(http) > 0, `${http.http5xx} HTTP 5xx`)
    // A real crash is a figure, not an aborted run.
    const exited = await fuzz(5000, 20, { faults: { coordinator: ['exit-on-malformed-frame'] } })
    assert.deepEqual([exited.exited, exited.healthy], [true, false])
    assert.ok(fuzzFigure(exited) > 0)
  })

  it('faults are named, refused when unknown, and announced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-faults-'))
    try {
      const unknown = startProc(['start', '--port', '0', '--memory', '--data', dir], { env: { COLONY_INJECT_FAULTS: 'handler-throws,no-such-fault' } })
      await unknown.waitFor(/unknown fault 'no-such-fault'/)
      await unknown.kill()
      assert.notEqual(unknown.child.exitCode, 0)
      const loud = startProc(['start', '--port', '0', '--memory', '--data', dir], { env: { COLONY_INJECT_FAULTS: 'handler-throws' } })
      try { await loud.waitFor(/WARNING: FAULTS INJECTED ON PURPOSE.*handler-throws/) } finally { await loud.kill() }
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })
})
