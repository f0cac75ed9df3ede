/**
 * The leader lease of hot-standby coordinators (coordinator/src/leader-lease.ts), on a real redis-server:
 * one holder at a time, a quick hand-over when the holder lets go or dies, and a leader that stops
 * by its deadline when it can no longer reach Redis.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { LeaderLease } from '@colony-grid/coordinator'
import { ROOT, spawnProc, type Proc } from './harness.js'
import { startRedisServer, type RedisServer } from './redis-server.js'

const TTL = 900
/** Slack for timers and the round trips on a busy 2-core machine. */
const SLACK = 250

/** Rejects if `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms) })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}
/** Whether `p` settles within `ms` (for what must not happen: the window is the test). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const r = await Promise.race([p.then(() => true, () => true), new Promise<false>((r) => { timer = setTimeout(() => r(false), ms) })])
  clearTimeout(timer)
  return r
}

describe('leader lease', () => {
  let redis: RedisServer
  const leases: LeaderLease[] = []
  const procs: Proc[] = []
  let keys = 0
  const lease = (key: string, id: string) => {
    const l = new LeaderLease(redis.url, { key, ttlMs: TTL, id })
    leases.push(l)
    return l
  }
  const losses = (l: LeaderLease) => { const why: string[] = []; l.on('lost', (w: string) => why.push(w)); return why }

  before(async () => { redis = await startRedisServer() })
  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')))
    for (const l of leases) await l.close()
    await redis?.dispose()
  })

  it('one of two candidates holds it, renewed past its ttl; on release the other takes it within ttl', async () => {
    const key = `lease-${++keys}`
    const a = lease(key, 'http://a'), b = lease(key, 'http://b')
    const aLost = losses(a), bLost = losses(b)
    await within(a.acquire(), TTL, 'a acquires a free lease')
    assert.equal(await b.holder(), 'http://a')
    const bGot = b.acquire()
    assert.equal(await settlesWithin(bGot, 3 * TTL), false, 'b does not take a lease that a keeps renewing')
    assert.deepEqual([a.isLeader, b.isLeader, await b.holder()], [true, false, 'http://a'])
    const t0 = performance.now()
    await a.release()
    await within(bGot, TTL, 'b takes the released lease')
    assert.ok(performance.now() - t0 < TTL, `b took it ${Math.round(performance.now() - t0)} ms after the release`)
    assert.deepEqual([a.isLeader, b.isLeader, await a.holder()], [false, true, 'http://b'])
    assert.deepEqual([aLost, bLost], [[], []], 'a release is not a loss')
    await b.release()
    assert.equal(await a.holder(), null)
  })

  it('a holder killed with -9 is replaced within ttl (plus the time to notice)', async () => {
    const key = `lease-${++keys}`
    const code = `import { LeaderLease } from '@colony-grid/coordinator'
      const l = new LeaderLease(${JSON.stringify(redis.url)}, { key: ${JSON.stringify(key)}, ttlMs: ${TTL}, id: 'http://doomed' })
      await l.acquire(); console.log('acquired')`
    const holder = spawnProc(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT })
    procs.push(holder)
    await holder.waitFor(/acquired/, 10_000)
    const b = lease(key, 'http://b')
    const bGot = b.acquire()
    assert.equal(await settlesWithin(bGot, 2 * TTL), false, 'the live holder keeps it')
    assert.equal(await b.holder(), 'http://doomed')
    await holder.kill('SIGKILL')
    // The key expires at most ttl after the kill (the holder renewed it before); b tries again just after.
    await within(bGot, TTL + SLACK, 'b takes the lease of the killed holder')
    assert.equal(await b.holder(), 'http://b')
    await b.release()
  })

  it('a renewal that finds another holder loses the lease at once', async () => {
    const key = `lease-${++keys}`
    const a = lease(key, 'http://a')
    const why = losses(a)
    await a.acquire()
    // As if a's lease had expired and another taken it (a's clock ran slow, a long pause).
    await a.redis.set(key, 'http://intruder', 'PX', 10 * TTL)
    await within(once(a, 'lost'), TTL / 3 + SLACK, "a's next renewal finds the intruder")
    assert.deepEqual([why, a.isLeader, await a.holder()], [['another holds it'], false, 'http://intruder'])
    await a.release() // not ours: leaves the intruder's lease alone
    assert.equal(await a.holder(), 'http://intruder')
  })

  it('acquire can be given up with an AbortSignal', async () => {
    const key = `lease-${++keys}`
    const a = lease(key, 'http://a'), b = lease(key, 'http://b')
    await a.acquire()
    const ac = new AbortController()
    const bGot = b.acquire(ac.signal)
    ac.abort()
    await assert.rejects(within(bGot, SLACK, 'the abort'), { name: 'AbortError' })
    assert.deepEqual([b.isLeader, await b.holder()], [false, 'http://a'])
    await a.release()
  })

  it('a leader whose Redis hangs (SIGSTOP) emits lost by its deadline, once', async () => {
    const key = `lease-${++keys}`
    const a = lease(key, 'http://a')
    const why = losses(a)
    await a.acquire()
    redis.pause()
    const t0 = performance.now()
    try {
      // Its last renewal came before the pause, so its deadline is at most ttl from now.
      await within(once(a, 'lost'), TTL + SLACK, 'lost while Redis hangs')
    } finally { redis.resume() }
    assert.ok(performance.now() - t0 <= TTL + SLACK)
    assert.deepEqual([why, a.isLeader], [['not renewed before it expired'], false])
    // It can stand again once Redis answers (its own stale lease is taken over, not waited out).
    await within(a.acquire(), TTL + SLACK, 'a acquires again')
    await a.release()
    assert.deepEqual(why, ['not renewed before it expired'], "'lost' came once")
  })

  it('a leader whose Redis is killed emits lost by its deadline, once', async () => {
    const key = `lease-${++keys}`
    const a = lease(key, 'http://a')
    const why = losses(a)
    await a.acquire()
    const t0 = performance.now()
    await redis.kill9()
    await within(once(a, 'lost'), TTL + SLACK, 'lost with Redis gone')
    assert.ok(performance.now() - t0 <= TTL + SLACK)
    assert.equal(await settlesWithin(once(a, 'lost'), TTL), false, "'lost' comes once")
    assert.deepEqual([why, a.isLeader], [['not renewed before it expired'], false])
  })
})
