/**
 * Named state (coordinator/src/state-api.ts): bytes a driver keeps under a key, per submit token,
 * through real coordinator processes: the round trip, the errors, a kill -9 of the coordinator after
 * a PUT was answered, retention, and a standby on Redis that answers 503 and then serves the state.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { connect } from '@colony-grid/client'
import { api, startGrid, startProc, until, type GridProcs } from './harness.js'
import { startRedisServer } from './redis-server.js'

interface ApiError { error: { code: string; message: string; limit?: string } }
interface Listed { key: string; size: number; updatedAt: number }

/** A raw request with `token` (the grid's submit token by default): the body as bytes, whatever its type. */
async function call(g: { url: string; submitToken: string }, path: string, init: RequestInit & { token?: string } = {}) {
  const res = await fetch(new URL(path, g.url), { ...init, headers: { authorization: `Bearer ${init.token ?? g.submitToken}`, ...init.headers } })
  return { status: res.status, headers: res.headers, bytes: new Uint8Array(await res.arrayBuffer()) }
}
const put = (g: GridProcs, key: string, body: Uint8Array | string, token?: string) => call(g, `/api/state/${key}`, { method: 'PUT', body: body as BodyInit, token })
const json = <T>(b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as T
/** Every byte value, twice, in no simple order. */
const allBytes = () => Uint8Array.from({ length: 512 }, (_, i) => (i * 101 + 7) % 256)

describe('named state over HTTP', () => {
  let g: GridProcs
  const LIMIT = 4096
  before(async () => { g = await startGrid({ workers: 0, env: { COLONY_MAX_STATE_BYTES: String(LIMIT) } }) })
  after(async () => { await g?.stop() })

  it('PUT then GET gives back the same bytes, as octet-stream with when it was written; a PUT replaces; DELETE takes it, twice over', async () => {
    const t0 = Date.now()
    const made = await put(g, 'tune/run-1/trial-0', allBytes())
    assert.equal(made.status, 200)
    const info = json<Listed>(made.bytes)
    assert.deepEqual([info.key, info.size], ['tune/run-1/trial-0', 512])
    assert.ok(info.updatedAt >= t0 - 1000 && info.updatedAt <= Date.now() + 1000, `updatedAt ${info.updatedAt} is now`)
    const got = await call(g, '/api/state/tune/run-1/trial-0')
    assert.equal(got.status, 200)
    assert.equal(got.headers.get('content-type'), 'application/octet-stream')
    assert.equal(Number(got.headers.get('x-colony-updated-at')), info.updatedAt)
    assert.deepEqual([...got.bytes], [...allBytes()])

    assert.equal((await put(g, 'tune/run-1/trial-0', 'second')).status, 200)
    assert.equal(new TextDecoder().decode((await call(g, '/api/state/tune/run-1/trial-0')).bytes), 'second')
    assert.equal((await put(g, 'tune/run-1/empty', new Uint8Array(0))).status, 200)
    const empty = await call(g, '/api/state/tune/run-1/empty')
    assert.deepEqual([empty.status, empty.bytes.byteLength], [200, 0])

    assert.equal((await call(g, '/api/state/tune/run-1/trial-0', { method: 'DELETE' })).status, 204)
    const gone = await api<ApiError>(g, '/api/state/tune/run-1/trial-0')
    assert.deepEqual([gone.status, gone.body.error.code], [404, 'NOT_FOUND'])
    assert.match(gone.body.error.message, /no state tune\/run-1\/trial-0/)
    assert.equal((await call(g, '/api/state/tune/run-1/trial-0', { method: 'DELETE' })).status, 204, 'DELETE of what is not there')
    assert.equal((await api(g, '/api/state/never/written')).status, 404)
  })

  it('GET /api/state?prefix= lists this token\'s keys under the prefix, in key order, with sizes', async () => {
    for (const [key, n] of [['list/b/2', 2], ['list/b/1', 1], ['list/bb', 3], ['list-other', 4]] as const) {
      assert.equal((await put(g, key, new Uint8Array(n))).status, 200)
    }
    const under = await api<Listed[]>(g, '/api/state?prefix=list/b/')
    assert.equal(under.status, 200)
    assert.deepEqual(under.body.map((x) => [x.key, x.size]), [['list/b/1', 1], ['list/b/2', 2]])
    assert.ok(under.body.every((x) => typeof x.updatedAt === 'number'))
    assert.deepEqual((await api<Listed[]>(g, '/api/state?prefix=list/b')).body.map((x) => x.key), ['list/b/1', 'list/b/2', 'list/bb'])
    const all = (await api<Listed[]>(g, '/api/state')).body.map((x) => x.key)
    assert.ok(['list-other', 'list/b/1', 'list/b/2', 'list/bb'].every((k) => all.includes(k)), all.join(', '))
    assert.deepEqual((await api<Listed[]>(g, '/api/state?prefix=nothing/here')).body, [])
    assert.equal((await api<ApiError>(g, '/api/state?prefix=a%20b')).status, 400)
  })

  it('another submit token sees none of it, and its own keys are its own; a join token or none is refused', async () => {
    assert.equal((await put(g, 'private/x', 'mine')).status, 200)
    const other = await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label: 'another user' }) })
    assert.equal(other.status, 201)
    const token = other.body.token
    assert.equal((await call(g, '/api/state/private/x', { token })).status, 404, 'another token\'s state does not exist for it')
    assert.deepEqual(json((await call(g, '/api/state?prefix=private', { token })).bytes), [])
    assert.equal((await call(g, '/api/state/private/x', { method: 'DELETE', token })).status, 204)
    assert.equal((await put(g, 'private/x', 'theirs', token)).status, 200)
    assert.equal(new TextDecoder().decode((await call(g, '/api/state/private/x')).bytes), 'mine', 'neither its DELETE nor its PUT touched the first token\'s')
    assert.equal(new TextDecoder().decode((await call(g, '/api/state/private/x', { token })).bytes), 'theirs')

    const join = await api<ApiError>(g, '/api/state/private/x', { token: g.joinToken })
    assert.deepEqual([join.status, join.body.error.message], [401, 'this needs the submit token'])
    const none = await fetch(new URL('/api/state/private/x', g.url))
    assert.equal(none.status, 401)
    assert.equal((await fetch(new URL('/api/state/private/x', g.url), { method: 'PUT', body: 'x' })).status, 401)
  })

  it('a bad key gets 400 saying what a key may be', async () => {
    const long = 'k'.repeat(257)
    for (const key of ['a//b', 'a/', 'a%2F..%2Fb', '.%2Fa', 'a%20b', 'a%3Fb', 'caf%C3%A9', long, '']) {
      const r = await api<ApiError>(g, `/api/state/${key}`, { method: 'PUT', body: 'x' })
      assert.equal(r.status, 400, `${key}: ${JSON.stringify(r.body)}`)
      assert.equal(r.body.error.code, 'PROTOCOL')
      assert.match(r.body.error.message, /^bad state key .*; a key is 1–256 characters of A–Z a–z 0–9 \. _ ~ - and \//)
    }
    assert.equal((await put(g, `${'k'.repeat(246)}/a.b~c_d-e`, 'x')).status, 200, 'the longest key, with every allowed sign')
    assert.equal((await api(g, '/api/state/a//b')).status, 400, 'GET checks the key too')
  })

  it('a state over COLONY_MAX_STATE_BYTES gets 413 naming the limit and how to raise it; one at the limit is kept', async () => {
    const over = await api<ApiError>(g, '/api/state/big', { method: 'PUT', body: new Uint8Array(LIMIT + 1) })
    assert.equal(over.status, 413)
    assert.equal(over.body.error.limit, 'maxStateBytes')
    assert.match(over.body.error.message, new RegExp(`at most ${LIMIT} bytes.*COLONY_MAX_STATE_BYTES`))
    // Streamed, with no length to go by: cut off as it arrives.
    const chunks = [new Uint8Array(LIMIT), new Uint8Array(LIMIT)]
    const streamed = await call(g, '/api/state/big', { method: 'PUT', body: new ReadableStream({ pull(c) { const x = chunks.shift(); if (x) c.enqueue(x); else c.close() } }), duplex: 'half' } as RequestInit)
    assert.equal(streamed.status, 413)
    assert.equal((await api(g, '/api/state/big')).status, 404, 'nothing was kept')
    assert.equal((await put(g, 'big', new Uint8Array(LIMIT).fill(7))).status, 200)
    assert.equal((await call(g, '/api/state/big')).bytes.byteLength, LIMIT)
  })

  it('a driver reaches it with grid.request, which sends its token', async () => {
    const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const res = await grid.request('/api/state/driver/ckpt', { method: 'PUT', body: allBytes() })
      assert.equal(res.status, 200)
      assert.deepEqual([...new Uint8Array(await (await grid.request('/api/state/driver/ckpt')).arrayBuffer())], [...allBytes()])
    } finally { await grid.close() }
    assert.deepEqual([...(await call(g, '/api/state/driver/ckpt')).bytes], [...allBytes()], 'under the same token as plain HTTP')
  })
})

describe('named state lasts', () => {
  it('a PUT that was answered survives kill -9 of the coordinator and a restart on the same SQLite file', async () => {
    const g = await startGrid({ workers: 0 })
    try {
      const big = randomBytes(3 * 1024 * 1024)
      const other = (await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit' }) })).body.token
      assert.equal((await put(g, 'ckpt/big', big)).status, 200)
      assert.equal((await put(g, 'ckpt/theirs', allBytes(), other)).status, 200)
      // Killed the moment the answer came: no later commit, no clean close.
      await g.coordinator.kill('SIGKILL')
      await g.startCoordinator()
      const got = await call(g, '/api/state/ckpt/big')
      assert.equal(got.status, 200)
      assert.ok(Buffer.from(got.bytes).equals(big), 'the same 3 MiB')
      assert.deepEqual([...(await call(g, '/api/state/ckpt/theirs', { token: other })).bytes], [...allBytes()])
      assert.equal((await call(g, '/api/state/ckpt/theirs')).status, 404, 'still another token\'s')
    } finally { await g.stop() }
  })

  it('retention drops a state not written for COLONY_KEEP_STATE_MS, and keeps one written since', async () => {
    const g = await startGrid({ workers: 0, env: { COLONY_KEEP_STATE_MS: '3000' } })
    try {
      const t0 = Date.now()
      assert.equal((await put(g, 'old', 'a')).status, 200)
      await new Promise((r) => setTimeout(r, 1500))
      assert.equal((await put(g, 'young', 'b')).status, 200)
      assert.equal((await api(g, '/api/state/old')).status, 200, 'kept while younger than the setting')
      await until(async () => (await api(g, '/api/state/old')).status === 404, 15_000, 'the old state to expire')
      assert.ok(Date.now() - t0 >= 3000, `dropped after ${Date.now() - t0} ms, not before 3000`)
      assert.equal((await api(g, '/api/state/young')).status, 200, 'the one written since is kept')
      assert.deepEqual((await api<Listed[]>(g, '/api/state')).body.map((x) => x.key), ['young'])
    } finally { await g.stop() }
  })
})

describe('named state on Redis, with a standby', () => {
  it('a standby answers the state routes with 503 naming the leader; once it takes over it serves what the leader stored', async () => {
    const redis = await startRedisServer({ appendOnly: true })
    const hex = () => randomBytes(16).toString('hex')
    const tokens = { COLONY_SUBMIT_TOKEN: hex(), COLONY_JOIN_TOKEN: hex(), COLONY_TRUSTED_JOIN_TOKEN: hex() }
    const lead = await startGrid({ workers: 0, store: redis.url, env: tokens })
    const dir = mkdtempSync(join(tmpdir(), 'colony-state-'))
    const standby = startProc(['start', '--port', '0', '--data', dir, '--store', redis.url, '--standby'], { env: tokens })
    try {
      const url = `http://127.0.0.1:${new URL((await standby.waitFor(/Colony coordinator on (https?:\/\/\S+)/))[1]).port}`
      const other = { url, submitToken: tokens.COLONY_SUBMIT_TOKEN }
      await standby.waitFor(/standing by/)
      assert.equal((await put(lead, 'search/s1', allBytes())).status, 200)
      for (const [path, method] of [['/api/state/search/s1', 'GET'], ['/api/state/search/s1', 'PUT'], ['/api/state/search/s1', 'DELETE'], ['/api/state?prefix=search', 'GET']]) {
        const r = await call(other, path, { method, ...(method === 'PUT' ? { body: 'x' } : {}) })
        assert.equal(r.status, 503, `${method} ${path}`)
        const body = json<ApiError & { standby: boolean; leader: string }>(r.bytes)
        assert.deepEqual([body.standby, body.error.code, new URL(body.leader).port], [true, 'STANDBY', String(lead.port)])
      }
      await lead.coordinator.kill('SIGKILL')
      await standby.waitFor(/took over as leader/, 15_000)
      const got = await call(other, '/api/state/search/s1')
      assert.equal(got.status, 200)
      assert.deepEqual([...got.bytes], [...allBytes()])
      assert.deepEqual(json<Listed[]>((await call(other, '/api/state?prefix=search/')).bytes).map((x) => [x.key, x.size]), [['search/s1', 512]])
    } finally {
      await standby.kill('SIGKILL')
      await lead.stop()
      await redis.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
