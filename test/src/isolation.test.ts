/** Tokens per user, revocation, jobs that see only their own, and the limits at the boundary. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { AuthError, connect, LimitError, ObjectRef } from '@colony-grid/client'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame } from '@colony-grid/shared'
import { api, startProc, until, withGrid } from './harness.js'

const makeToken = async (g: { url: string; submitToken: string }, role: 'submit' | 'join', label: string) => {
  const r = await api<{ token: string; id: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role, label }) })
  assert.equal(r.status, 201)
  return r.body
}

describe('isolation between users', () => {
  it('a job is seen only with its own token; another job cannot read its objects; the operator sees all', async () => {
    await withGrid({ workers: 1, executors: 1 }, async (g) => {
      const alice = await makeToken(g, 'submit', 'alice'), bob = await makeToken(g, 'submit', 'bob')
      const a = await connect(g.url, { token: alice.token, onLog: false })
      const b = await connect(g.url, { token: bob.token, onLog: false })
      try {
        const secret = a.remote(() => 'alice\'s secret').remote()
        assert.equal(await a.get(secret), 'alice\'s secret')
        const big = a.put(new Uint8Array(200_000).fill(7)) // held by alice's driver, fetched peer to peer
        await a.get(a.remote((x: Uint8Array) => x.length).remote(big))
        for (const id of [secret.id, big.id]) {
          // Bob is refused, by name and at once: not left waiting until his get's own deadline (which says "timed out").
          const t0 = Date.now()
          await assert.rejects(b.get(new ObjectRef(id), { timeoutMs: 20_000 }), (e: unknown) => {
            assert.ok(e instanceof AuthError, `bob cannot read alice's ${id}: an AuthError, not ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`)
            assert.match(e.message, new RegExp(`may not read object ${id.replace(/\./g, '\\.')} for job ${b.jobId}$`))
            assert.equal(e.objectId, id)
            return true
          })
          assert.ok(Date.now() - t0 < 5_000, `the refusal took ${Date.now() - t0} ms`)
        }
        assert.equal((await api(g, `/api/jobs/${a.jobId}`, { token: bob.token })).status, 404)
        assert.equal((await api(g, `/api/jobs/${a.jobId}/tasks`, { token: bob.token })).status, 404)
        assert.equal((await api(g, `/api/jobs/${a.jobId}/logs`, { token: bob.token })).status, 404)
        const bobsList = (await api<{ items: { id: string }[] }>(g, '/api/jobs', { token: bob.token })).body.items.map((j) => j.id)
        assert.deepEqual(bobsList, [b.jobId])
        assert.equal((await api(g, `/api/jobs/${a.jobId}`, { token: alice.token })).status, 200)
        assert.equal((await api(g, `/api/jobs/${a.jobId}`)).status, 200, 'the operator sees every job')
        assert.equal((await api(g, '/api/tokens', { token: alice.token })).status, 401, 'only the operator manages tokens')
      } finally { await a.close(); await b.close() }
    })
  })

  it('a revoked token is refused, and its peers are dropped at once', async () => {
    await withGrid({ workers: 1, executors: 1 }, async (g, grid) => {
      const join = await makeToken(g, 'join', 'lab machine')
      const w = startProc(['worker', '--url', g.url, '--token', join.token, '--executors', '1'])
      try {
        const id = (await w.waitFor(/joined \S+ as (p_\w+)/))[1]
        const user = await makeToken(g, 'submit', 'carol')
        const revoked = await api<{ revoked: boolean; peersDropped: number }>(g, `/api/tokens/${join.id}`, { method: 'DELETE' })
        assert.deepEqual([revoked.status, revoked.body.revoked, revoked.body.peersDropped], [200, true, 1])
        await until(async () => !(await api<{ id: string }[]>(g, '/api/peers')).body.some((p) => p.id === id), 10_000, 'the revoked peer to leave')
        await api(g, `/api/tokens/${user.id}`, { method: 'DELETE' })
        assert.equal((await api(g, '/api/jobs', { token: user.token })).status, 401)
        // Refused for its token, at once; not "could not reach the coordinator" at connect's own deadline.
        await assert.rejects(connect(g.url, { token: user.token, onLog: false, log: () => {}, timeoutMs: 20_000 }), (e: unknown) =>
          e instanceof AuthError && /^bad token \(or a revoked one\)/.test(e.message))
        assert.equal((await api(g, '/api/tokens/' + (await api<{ id: string; operator: boolean }[]>(g, '/api/tokens')).body.find((t) => t.operator)!.id, { method: 'DELETE' })).status, 404, 'the operator\'s token cannot be revoked')
        assert.equal(await grid.get(grid.remote(() => 'still serving').remote()), 'still serving')
      } finally { await w.kill() }
    })
  })
})

describe('limits, each named when passed, and nothing else disturbed', () => {
  it('peers per token, tasks per job and argument size', async () => {
    const env = { COLONY_MAX_PEERS_PER_TOKEN: '1', COLONY_MAX_TASKS_PER_JOB: '20', COLONY_MAX_ARG_BYTES: '40000' }
    await withGrid({ workers: 1, executors: 1, env }, async (g, grid) => {
      // The grid's own worker joined with the trusted join token: a second one with it is one too many.
      const extra = startProc(['worker', '--url', g.url, '--token', g.trustedToken, '--executors', '1'])
      try {
        await extra.waitFor(/maxPeersPerToken/)
      } finally { await extra.kill() }
      const id = grid.remote((x: unknown) => x)
      const wide = 'x'.repeat(60_000) // under the 64 KiB auto-put threshold, so it stays in the task's arguments
      await assert.rejects(grid.get(id.remote(wide)), (e: unknown) => e instanceof LimitError && e.limit === 'maxArgBytes')
      const refs = Array.from({ length: 25 }, (_, i) => id.remote(i))
      const out = await Promise.allSettled(refs.map((r) => grid.get(r)))
      assert.equal(out.filter((o) => o.status === 'fulfilled').length, 19, 'the first 20 tasks of the job ran (one was the refused wide one)')
      assert.ok(out.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason instanceof LimitError && (o as PromiseRejectedResult).reason.limit === 'maxTasksPerJob'))
      // Another job (with its own token: this grid allows one peer per token) is not disturbed.
      const other = await connect(g.url, { token: (await makeToken(g, 'submit', 'other')).token, onLog: false })
      try { assert.equal(await other.get(other.remote(() => 'other jobs go on').remote()), 'other jobs go on') } finally { await other.close() }
    })
  })

  it('the message rate of one connection', async () => {
    await withGrid({ workers: 1, executors: 1, env: { COLONY_MAX_MSGS_PER_S: '500' } }, async (g, grid) => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      const got: Record<string, unknown>[] = []
      ws.on('message', (d: Buffer) => got.push(...decodeFrame(d) as Record<string, unknown>[]))
      await new Promise((r) => ws.once('open', r))
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.submitToken, kind: 'node', role: 'driver', capabilities: [], resources: {} }]))
      const t0 = Date.now()
      for (let i = 0; i < 10; i++) ws.send(encodeFrame(Array.from({ length: 200 }, () => ({ t: 'ping' }))))
      await until(async () => got.some((m) => m.t === 'error' && m.limit === 'maxMessageRate'), 5000, 'an error naming maxMessageRate')
      // Slowed down, not dropped: every ping is answered, at about the rate (2,000 at 500/s with a burst of 1,000).
      await until(async () => got.filter((m) => m.t === 'pong').length === 2000, 15_000, 'a pong for each of the 2,000 pings')
      assert.ok(Date.now() - t0 >= 1500, `the excess was spread over time (${Date.now() - t0} ms)`)
      assert.equal(ws.readyState, WebSocket.OPEN, 'the connection stays')
      assert.equal(await grid.get(grid.remote(() => 7).remote()), 7, 'other peers are not disturbed')
      ws.close()
    })
  })
})
