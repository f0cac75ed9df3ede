/** Bad input at the coordinator's boundaries gets a clear error, and the grid keeps serving everyone else. */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { AuthError, connect, type Grid } from '@colony-grid/client'
import { decodeFrame, encodeFrame, PROTOCOL_VERSION } from '@colony-grid/shared'
import { api, freePort, startGrid, until, type GridProcs } from './harness.js'

let g: GridProcs
let grid: Grid

before(async () => {
  g = await startGrid({ workers: 1, executors: 1, memory: true })
  grid = await connect(g.url, { token: g.submitToken, onLog: false })
})
after(async () => { await grid?.close(); await g?.stop() })

interface RawPeer { ws: WebSocket; next(): Promise<Record<string, unknown>>; closed: Promise<{ code: number; reason: string }> }

/** A hand-driven WebSocket peer, to send what no real peer would. */
async function rawPeer(): Promise<RawPeer> {
  const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
  const inbox: Record<string, unknown>[] = []
  const waiters: ((m: Record<string, unknown>) => void)[] = []
  ws.on('message', (data: Buffer) => {
    for (const m of decodeFrame(data) as Record<string, unknown>[]) { const w = waiters.shift(); if (w) w(m); else inbox.push(m) }
  })
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })))
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  return {
    ws, closed,
    next: () => new Promise((resolve, reject) => {
      const m = inbox.shift()
      if (m) { resolve(m); return }
      const t = setTimeout(() => reject(new Error('no message within 5 s')), 5000)
      waiters.push((x) => { clearTimeout(t); resolve(x) })
    }),
  }
}

const hello = (token: string) => ({ t: 'hello', v: PROTOCOL_VERSION, token, kind: 'node', role: 'worker', capabilities: [], resources: { cpu: 0 } })

/** A raw peer already welcomed as a worker. */
async function joinedPeer(): Promise<RawPeer> {
  const p = await rawPeer()
  p.ws.send(encodeFrame([hello(g.joinToken)]))
  assert.equal((await p.next()).t, 'welcome')
  return p
}

/** The next message is an error with this code, saying this. */
async function expectError(p: RawPeer, code: string, message: RegExp): Promise<Record<string, unknown>> {
  const err = await p.next()
  assert.equal(err.t, 'error')
  assert.equal(err.code, code)
  assert.match(String(err.message), message)
  return err
}

async function gridStillWorks(): Promise<void> {
  const f = grid.remote((x: number) => x + 1)
  assert.equal(await grid.get(f.remote(1), { timeoutMs: 20_000 }), 2)
}

describe('the peer WebSocket', () => {
  it('refuses a bad token with an AuthError and close code 4401', async () => {
    const p = await rawPeer()
    p.ws.send(encodeFrame([hello('not-a-token')]))
    await expectError(p, 'AUTH', /bad token/)
    assert.equal((await p.closed).code, 4401)
    await gridStillWorks()
  })

  it('refuses a peer of another protocol version, saying what to install', async () => {
    const p = await rawPeer()
    p.ws.send(encodeFrame([{ ...hello(g.joinToken), v: PROTOCOL_VERSION - 1 }]))
    await expectError(p, 'PROTOCOL', new RegExp(`speaks Colony protocol v${PROTOCOL_VERSION - 1}; the coordinator speaks v${PROTOCOL_VERSION}: install the same version`))
  })

  it('refuses a driver that presents the join token', async () => {
    const p = await rawPeer()
    p.ws.send(encodeFrame([{ ...hello(g.joinToken), role: 'driver' }]))
    await expectError(p, 'AUTH', /join token cannot submit jobs/)
  })

  it('answers a malformed frame with a protocol error and closes only that socket', async () => {
    const p = await joinedPeer()
    p.ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13]))
    await expectError(p, 'PROTOCOL', /malformed frame/)
    assert.equal((await p.closed).code, 1007)
    await gridStillWorks()
  })

  it('answers an unknown message type with an error and keeps the connection', async () => {
    const p = await joinedPeer()
    p.ws.send(encodeFrame([{ t: 'launchMissiles', at: 'now' }, { t: 'ping' }]))
    await expectError(p, 'PROTOCOL', /launchMissiles/)
    assert.equal((await p.next()).t, 'pong')
    p.ws.close()
  })

  it('rejects a message that breaks the schema (a worker submitting outside any task)', async () => {
    const p = await joinedPeer()
    p.ws.send(encodeFrame([{ t: 'submit', spec: { id: 't.x.1', name: 'evil', fn: 'f1', args: new Uint8Array([0x90]), deps: [], opts: {} } }]))
    await expectError(p, 'AUTH', /only from inside a task/)
    p.ws.close()
  })

  it('refuses a result for a task the peer was never given', async () => {
    const p = await joinedPeer()
    const f = grid.remote(() => new Promise((r) => setTimeout(() => r('honest'), 300)))
    const ref = f.remote()
    const task = ref.id.replace(/\.r0$/, '')
    const jobId = (grid as Grid & { jobId: string }).jobId
    await until(async () => (await api<{ items: { id: string }[] }>(g, `/api/jobs/${jobId}/tasks?limit=10000`)).body.items.some((t) => t.id === task), 10_000, 'the coordinator knows the task')
    p.ws.send(encodeFrame([{ t: 'done', task, attempt: 1, results: [{ size: 1, inline: new Uint8Array([0xc3]) }] }]))
    await expectError(p, 'AUTH', /never given task/)
    assert.equal(await grid.get(ref), 'honest')
    p.ws.close()
  })

  it('answers an oversized frame with a LimitError naming the limit', async () => {
    const p = await joinedPeer()
    p.ws.send(Buffer.alloc(33 * 1024 * 1024))
    const err = await p.next()
    assert.equal(err.code, 'LIMIT')
    assert.equal(err.limit, 'maxFrameBytes')
    assert.equal((await p.closed).code, 1009)
    await gridStillWorks()
  })
})

describe('the HTTP API', () => {
  it('answers missing and wrong tokens with 401 and a message', async () => {
    const res = await fetch(new URL('/api/jobs', g.url), { method: 'POST', body: '{}' })
    assert.equal(res.status, 401)
    const body = await res.json() as { error: { code: string; message: string } }
    assert.equal(body.error.code, 'AUTH')
    const asWorker = await api<{ error: { message: string } }>(g, '/api/jobs', { method: 'POST', token: g.joinToken, body: JSON.stringify({ bundle: 'export default () => 1' }) })
    assert.equal(asWorker.status, 401)
    assert.match(asWorker.body.error.message, /submit token/)
  })

  it('answers bad bodies with 400, unknown jobs with 404, and huge bundles with 413', async () => {
    assert.equal((await api(g, '/api/jobs', { method: 'POST', body: 'not json' })).status, 400)
    assert.equal((await api(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: 42 }) })).status, 400)
    assert.equal((await api(g, '/api/jobs/j_nope')).status, 404)
    const big = await api<{ error: { limit: string } }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: 'x'.repeat(9 * 1024 * 1024) }) })
    assert.equal(big.status, 413)
    assert.equal(big.body.error.limit, 'maxBundleBytes')
  })

  it('fails a job whose bundle throws at import, with a clear error, and runs the next job', async () => {
    const bad = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: "throw new Error('bad import'); export default () => 1" }) })
    assert.equal(bad.status, 201)
    const end = Date.now() + 30_000
    let job: { state: string; error?: { message: string } }
    do {
      job = (await api<typeof job>(g, `/api/jobs/${bad.body.id}`)).body
      if (job.state !== 'running') break
      await new Promise((r) => setTimeout(r, 50))
    } while (Date.now() < end)
    assert.equal(job.state, 'failed')
    assert.match(job.error!.message, /the job bundle failed to import: bad import/)
    await gridStillWorks()
  })
})

describe('connect()', () => {
  it('rejects with AuthError for a wrong token', async () => {
    await assert.rejects(connect(g.url, { token: 'wrong', onLog: false, log: () => {} }), (e: unknown) => e instanceof AuthError && /bad token/.test(e.message))
  })

  it('rejects with a clear message when no coordinator answers in time', async () => {
    const port = await freePort()
    await assert.rejects(connect(`http://127.0.0.1:${port}`, { token: 'x', timeoutMs: 1000, log: () => {} }), /could not reach the coordinator at .* is it running/)
  })
})
