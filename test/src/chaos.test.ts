/** Small, fast versions of each `npm run chaos` scenario (test/src/chaos/scenarios.ts), with their targets asserted. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { authViolations, byzantine, coordinatorRestart, fuzz, peerChurn } from './chaos/scenarios.js'

describe('chaos, small', () => {
  it('peer churn: peers killed and replaced mid-job lose no result, duplicate none, and change no byte of the output', async () => {
    const f = await peerChurn(2000, 500)
    assert.ok(f.kills >= 1, `at least one peer was killed mid-job (${f.kills})`)
    assert.deepEqual([f.lost, f.duplicates, f.identical], [0, 0, true])
  })

  it('coordinator kill -9 and restart: no result lost, none recorded twice, none wrong', async () => {
    assert.deepEqual(await coordinatorRestart(1500), { lost: 0, recorded: 1500, wrong: 0 })
  })

  it('a hostile peer: no wrong answer accepted with replicas: 2, and it is quarantined', async () => {
    assert.deepEqual(await byzantine(30), { wrongAccepted: 0, quarantined: true, lost: 0 })
  })

  it('auth: every violation attempt is refused', async () => {
    const r = await authViolations()
    assert.deepEqual(r.allowed, [])
    assert.ok(r.attempts >= 20, `${r.attempts} attempts`)
  })

  it('fuzzed frames and requests: the coordinator does not crash, and still runs jobs', async () => {
    const f = await fuzz(20_000, 200)
    assert.equal(f.frames, 20_000)
    assert.deepEqual([f.crashes, f.healthy], [0, true])
  })
})
