/**
 * Reputations stay bounded on a grid that sees millions of peers come and go (issue 17), without
 * forgetting the one thing that must not be forgotten: a quarantine.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Reputations } from '@colony-grid/coordinator'

const disagree = (r: Reputations, peer: string, times = 1) => { for (let i = 0; i < times; i++) r.disagreed(peer) }

describe('reputations, bounded', () => {
  it('keeps at most `max` standings of peers and of origins; the oldest that is not quarantined goes first, and a forgotten origin is reported', () => {
    const forgot: string[] = []
    const r = new Reputations({ max: 3, forgotOrigin: (o) => forgot.push(o) })
    r.join('p_bad', 'k_1@10.0.0.1', true)
    disagree(r, 'p_bad', 3)
    assert.equal(r.quarantined('p_bad'), true)
    for (let i = 0; i < 10; i++) {
      r.join(`p_${i}`, `k_1@10.0.1.${i}`, true)
      disagree(r, `p_${i}`)
    }
    assert.deepEqual(r.size, { peers: 3, origins: 3 })
    assert.equal(r.quarantined('p_bad'), true, 'the quarantined peer is not the one forgotten')
    assert.equal(r.originStanding('k_1@10.0.0.1').quarantined, true, 'nor its origin')
    assert.equal(r.score('p_9'), 0.75, 'the newest standings are kept')
    assert.equal(r.score('p_0'), Reputations.START, 'the oldest ones went')
    assert.deepEqual(forgot, Array.from({ length: 8 }, (_, i) => `k_1@10.0.1.${i}`))
  })

  it('does not keep a standing that has healed back to the start', () => {
    const forgot: string[] = []
    const r = new Reputations({ forgotOrigin: (o) => forgot.push(o) })
    r.join('p_a', 'k_1@10.0.0.9', true)
    disagree(r, 'p_a')
    assert.deepEqual(r.size, { peers: 1, origins: 1 })
    let saved = 0
    for (let i = 0; i < 20; i++) if (r.agreed('p_a')) saved++
    assert.equal(r.score('p_a'), Reputations.START)
    assert.deepEqual(r.size, { peers: 0, origins: 0 })
    assert.deepEqual(forgot, ['k_1@10.0.0.9'], 'its origin\'s row is to go from the store')
    assert.ok(saved > 0 && saved < 20, `the origin was saved while it healed (${saved} times), not after`)
  })
})
