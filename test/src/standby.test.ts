/**
 * Coordinators on Redis (issue 15): a hot standby that takes over when the leader dies, a
 * second leader refused, a standby that sends peers on, and a Redis restart mid-job.
 * Real processes throughout: redis-server, coordinators, Node workers and a driver.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { connect } from '@colony-grid/client'
import { CLOSE_STANDBY } from '@colony-grid/shared'
import { startCoordinator } from '@colony-grid/coordinator'
import { startProc, type Proc } from './harness.js'
import { startRedisServer, type RedisServer } from './redis-server.js'
import { coordinatorFailover, failoverDuplicates, failoverLost } from './chaos/failover.js'
import { mix, settle } from './chaos/scenarios.js'

const token = () => randomBytes(16).toString('hex')

describe('coordinators on one Redis', () => {
  let redis: RedisServer
  const dirs: string[] = []
  const procs: Proc[] = []
  const tokens = { COLONY_SUBMIT_TOKEN: token(), COLONY_JOIN_TOKEN: token(), COLONY_TRUSTED_JOIN_TOKEN: token() }
  const coordinator = async (args: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-redis-'))
    dirs.push(dir)
    const p = startProc(['start', '--port', '0', '--data', dir, '--store', redis.url, ...args], { env: tokens })
    procs.push(p)
    return p
  }
  const urlOf = async (p: Proc) => `http://127.0.0.1:${new URL((await p.waitFor(/Colony coordinator on (https?:\/\/\S+)/))[1]).port}`

  before(async () => { redis = await startRedisServer({ appendOnly: true }) })
  after(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')))
    await redis?.dispose()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('a second coordinator without --standby refuses to start, naming the leader; a standby sends HTTP and peers on', async () => {
    const lead = await coordinator([])
    const leadUrl = await urlOf(lead)
    const second = await coordinator([])
    await second.waitFor(/another coordinator \(\S+\) leads the store[\s\S]*--standby/)
    assert.notEqual((await second.waitExit()).code, 0)
    const standby = await coordinator(['--standby'])
    const standbyUrl = await urlOf(standby)
    await standby.waitFor(/standing by/)
    const res = await fetch(new URL('/api/jobs', standbyUrl), { headers: { authorization: `Bearer ${tokens.COLONY_SUBMIT_TOKEN}` } })
    assert.equal(res.status, 503)
    const body = await res.json() as { standby: boolean; leader: string; error: { code: string } }
    assert.equal(body.standby, true)
    assert.equal(body.error.code, 'STANDBY')
    assert.equal(new URL(body.leader).port, new URL(leadUrl).port, 'it names the leader')
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      const ws = new WebSocket(standbyUrl.replace('http', 'ws') + '/ws')
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
      ws.on('error', reject)
    })
    assert.equal(closed.code, CLOSE_STANDBY)
    assert.match(closed.reason, /standby; the leader is/)
    await lead.kill('SIGTERM')
    await standby.waitFor(/took over as leader/, 15_000)
    const h = await (await fetch(new URL('/healthz', standbyUrl))).json() as { standby?: boolean; store: string }
    assert.deepEqual([h.standby, h.store], [undefined, 'redis'])
    await standby.kill('SIGTERM')
  })

  /**
   * A leader on Redis with one worker, and `n` tasks of which a fifth have finished; `during` breaks
   * something, and then every result must still arrive, right.
   */
  const jobThrough = async (n: number, during: (lead: Proc, url: string) => Promise<void>) => {
    const lead = await coordinator([])
    const url = await urlOf(lead)
    const w = startProc(['worker', '--url', url, '--token', tokens.COLONY_TRUSTED_JOIN_TOKEN, '--executors', '1', '--trusted'])
    procs.push(w)
    await w.waitFor(/joined \S+ as p_\w+/)
    const grid = await connect(url, { token: tokens.COLONY_SUBMIT_TOKEN, onLog: false, log: () => {} })
    try {
      const work = grid.remote(mix)
      const refs = Array.from({ length: n }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: n / 5, timeoutMs: 120_000 })
      await during(lead, url)
      const { values, lost } = await settle(grid, refs, 120_000)
      assert.equal(lost, 0)
      assert.equal(values.filter((v, i) => v !== mix(i)).length, 0)
      assert.equal(lead.child.exitCode, null, 'the coordinator is still up')
    } finally {
      redis.resume()
      await grid.close()
      // Whatever happened, this leader must not hold the lease into the next test.
      await w.kill('SIGTERM')
      await lead.kill('SIGTERM')
    }
  }

  it('a standby closed while it waits for the lease stops asking for it (its retries would keep an embedding process alive)', async () => {
    const quiet = { log: () => {}, port: 0, store: redis.url as `redis://${string}`, dataDir: mkdtempSync(join(tmpdir(), 'colony-redis-')) }
    dirs.push(quiet.dataDir)
    const lead = await startCoordinator(quiet)
    try {
      const standby = await startCoordinator({ ...quiet, standby: true })
      assert.equal(standby.role, 'standby')
      await standby.close()
      const settled = await Promise.race([standby.leading.then(() => 'led', () => 'stopped'), new Promise((r) => setTimeout(r, 5000, 'still trying')).then((v) => v)])
      assert.equal(settled, 'stopped', 'a closed standby neither leads nor keeps trying')
      assert.equal(lead.role, 'leader')
    } finally { await lead.close() }
  })

  it('a Redis restart mid-job: the coordinator waits, says so, and goes on; no result is lost', async () => {
    await jobThrough(1500, async (lead) => {
      // Down until the coordinator has seen a commit fail (a restart quicker than that fails none).
      await redis.stop()
      await lead.waitFor(/cannot commit to the redis store/, 15_000)
      await redis.restart()
      // Back within the lease it goes on as it was; on a machine slow enough to lose the lease, it leads again.
      await lead.waitFor(/reachable again after|took over as leader/, 30_000)
    })
  })

  it('a leader cut off from Redis for longer than its lease stops serving, stands by, and leads again; the job still completes', async () => {
    await jobThrough(600, async (lead, url) => {
      // Frozen, not gone: connections stay open and nothing answers (a partition, as the leader sees it).
      redis.pause()
      await lead.waitFor(/lost the leader lease[\s\S]*stopped serving; standing by/, 15_000)
      const standing = await fetch(new URL('/healthz', url)).then((r) => r.json() as Promise<{ standby?: boolean }>)
      assert.equal(standing.standby, true, 'it serves nothing while it cannot prove it leads')
      redis.resume()
      await lead.waitFor(/took over as leader/, 30_000)
    })
  })
})

describe('failover', () => {
  it('kill -9 of the leader a quarter of the way: the standby takes over; nothing lost, nothing recorded twice, each actor call run once', async () => {
    const f = await coordinatorFailover(1500, 60)
    assert.ok(f.finishedBeforeKill > 0 && f.finishedBeforeKill < 1500, `${f.finishedBeforeKill} finished before the kill: it came mid-job`)
    assert.deepEqual([failoverLost(f), failoverDuplicates(f, 1500)], [0, 0], JSON.stringify(f))
    assert.ok(Number.isFinite(f.takeoverS))
  })

  it('the figures can fail: a standby that applies finished results again, or fails unfinished tasks', async () => {
    const dup = await coordinatorFailover(800, 30, { faults: { coordinator: ['restart-reapplies'] } })
    assert.ok(failoverDuplicates(dup, 800) > 0, JSON.stringify(dup))
    const lost = await coordinatorFailover(800, 30, { faults: { coordinator: ['takeover-fails-unfinished'] } })
    assert.ok(failoverLost(lost) > 0, JSON.stringify(lost))
  })
})
