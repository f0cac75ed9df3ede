/** Objects move peer to peer over WebRTC, the coordinator relays none of it, and grants guard every read. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Grid, ObjectRef } from '@colony-grid/client'
import { DataPlane, LocalObjectStore, type Peer } from '@colony-grid/worker-web'
import { nodeRtc } from '@colony-grid/worker-web/node'
import { grantPayload, hmacSha256Hex, nobleSha256Stream, sha256Hex, sha256HexSync, verifyGrantSync, type Grant, type PullPlanMsg } from '@colony-grid/shared'
import { createHash, createHmac } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { hmac } from '@noble/hashes/hmac.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { api, freePort, metric, until, withGrid, type GridProcs } from './harness.js'
import { startCoturn } from './net/coturn.js'

const MB50 = 50 * 1024 * 1024
type TaskRow = { id: string; name: string; state: string; peer?: string; attempts?: number }

/** A 50 MB object made on a peer with capability `a`, consumed on one with `b`. */
async function bigAcross(grid: Grid): Promise<{ made: ObjectRef<Uint8Array>; total: number }> {
  const make = grid.remote(function make(n: number) { const b = new Uint8Array(n); for (let i = 0; i < n; i += 4096) b[i] = i % 251; return b }, { capabilities: ['a'] })
  const check = grid.remote(function check(b: Uint8Array) { let s = 0; for (let i = 0; i < b.length; i += 4096) s += b[i]; return s + b.length }, { capabilities: ['b'] })
  const made = make.remote(MB50)
  let want = MB50
  for (let i = 0; i < MB50; i += 4096) want += i % 251
  const total = await grid.get(check.remote(made), { timeoutMs: 60_000 })
  assert.equal(total, want)
  return { made, total }
}

/** A grid with two peers labelled `a` and `b`, both started with `flags`. */
function withPair(flags: string[], body: (g: GridProcs, grid: Grid & { jobId: string }) => Promise<void>, env?: Record<string, string>): Promise<void> {
  return withGrid({ workers: 0, memory: true, env }, async (g, grid) => {
    await g.addWorker(1, ['--capabilities', 'a', ...flags])
    await g.addWorker(1, ['--capabilities', 'b', ...flags])
    await body(g, grid)
  })
}

describe('peer-to-peer objects', () => {
  it('moves a 50 MB object from the peer that made it to the one that reads it, with 0 bytes relayed', async () => {
    await withPair([], async (g, grid) => {
      const { made } = await bigAcross(grid)
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0)
      // Locality: a reader free to run anywhere runs where the 50 MB already are.
      const size = grid.remote(function size(b: Uint8Array) { return b.length })
      assert.equal(await grid.get(size.remote(made)), MB50)
      const tasks = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items
      assert.equal(tasks.find((t) => t.name === 'size')!.peer, tasks.find((t) => t.name === 'make')!.peer)
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0)
    })
  })

  it('relays the same object through the coordinator when peers are set to relay only', async () => {
    await withPair(['--relay'], async (g, grid) => {
      await bigAcross(grid)
      assert.ok(await metric(g, 'colony_relayed_bytes_total') >= MB50)
    })
  })

  it('falls back to the relay by itself when no data channel connects in time', async () => {
    // Relay-only ICE with no TURN server configured: no candidate pair can ever form.
    await withPair(['--ice-relay-only'], async (g, grid) => {
      await bigAcross(grid)
      assert.ok(await metric(g, 'colony_relayed_bytes_total') >= MB50)
    })
  })

  it('runs several transfers at once over one link', async () => {
    await withPair([], async (g, grid) => {
      const make = grid.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const sums = grid.remote(function sums(...bs: Uint8Array[]) { return bs.map((b) => b[0] * b.length) }, { capabilities: ['b'] })
      const parts = [1, 2, 3, 4].map((v) => make.remote(8 * 1024 * 1024, v))
      await grid.wait(parts, { numReturns: 4 })
      assert.deepEqual(await grid.get(sums.remote(...parts)), [1, 2, 3, 4].map((v) => v * 8 * 1024 * 1024))
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0)
    })
  })

  it('gives the reader a correct result when the holder is killed mid-transfer', async (t) => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      // Two peers that can make the object (`a`), each with a label of its own to pin work on it.
      await g.addWorker(1, ['--capabilities', 'a,h0'])
      await g.addWorker(1, ['--capabilities', 'a,h1'])
      const make = grid.remote(function make(n: number) { return new Uint8Array(n).fill(3) }, { capabilities: ['a'] })
      const made = make.remote(MB50)
      await grid.wait([made], { timeoutMs: 30_000 })
      const holder = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'make')!.peer!
      const holderProc = g.workers[g.workerIds.indexOf(holder)]
      // What travels: the encoded value (a few bytes over the 50 MB of the array).
      const size = (await api<{ items: { id: string; size: number }[] }>(g, `/api/jobs/${grid.jobId}/objects?limit=10000`)).body.items.find((o) => o.id === made.id)!.size
      assert.ok(size >= MB50 && size < MB50 + 1024, `size ${size}`)
      // This driver is the reader. What its data plane reads directly, from whom, and how it ended:
      const data = (grid as unknown as { peer: Peer }).peer.data as unknown as { bytesIn: number; receive(link: { remote: string }, raw: Uint8Array): void; fetch(plan: PullPlanMsg): Promise<Uint8Array> }
      const fetchPlan = data.fetch.bind(data)
      const fetched: string[] = []
      data.fetch = (plan) => fetchPlan(plan).then((b) => { fetched.push(`${plan.holders.map((h) => h.peer)}: ok`); return b }, (e: Error) => { fetched.push(`${plan.holders.map((h) => h.peer)}: ${e.message}`); throw e })
      // First a data channel to the holder, with a small read (retried: now and then a new channel closes as it
      // forms, and that read takes the relay). The transfer under test then starts at once on an open channel.
      const small = grid.remote(function small(n: number) { return new Uint8Array(n).fill(1) }, { capabilities: [`h${g.workerIds.indexOf(holder)}`] })
      for (let i = 1; !fetched.includes(`${holder}: ok`); i++) {
        if (i > 5) assert.fail(`no data channel from this driver to the holder ${holder} in 5 tries: ${fetched.join('; ')}`)
        assert.equal((await grid.get(small.remote(200_000), { timeoutMs: 20_000 })).length, 200_000)
      }
      // Its data plane counts what arrives (bytesIn); what comes from the holder is counted here, and once
      // 1 MiB of it has arrived the holder is killed (SIGKILL, sent at once, from inside the receive): the
      // transfer is under way, and far from done, when the holder dies.
      const receive = data.receive.bind(data)
      let fromHolder = 0
      let atKill: number | undefined
      data.receive = (link, raw) => {
        const before = data.bytesIn
        receive(link, raw)
        if (link.remote !== holder) return
        fromHolder += data.bytesIn - before
        if (atKill === undefined && fromHolder >= 1024 * 1024) { atKill = fromHolder; holderProc.child.kill('SIGKILL') }
      }
      const bytesInBefore = data.bytesIn
      const relayedBefore = await metric(g, 'colony_relayed_bytes_total')
      const value = await grid.get(made, { timeoutMs: 60_000 })
      const relayed = await metric(g, 'colony_relayed_bytes_total') - relayedBefore
      assert.ok(atKill !== undefined && atKill < size, `the holder was killed with ${atKill} of ${size} bytes received (${fromHolder} from it; ${relayed} relayed; direct reads: ${fetched.join('; ')})`)
      assert.ok(fromHolder < size, `the holder's transfer never finished: ${fromHolder} of ${size} bytes came from it`)
      assert.equal(holderProc.child.signalCode ?? (await holderProc.exited).signal, 'SIGKILL')
      // The reader has the whole object, right, from another copy: the maker re-ran on the other peer
      // (lineage), and the object came from there, peer to peer or through the relay.
      assert.equal(value.length, MB50)
      assert.ok(value.every((b) => b === 3), 'every byte is right')
      const rerun = (await api<{ items: TaskRow[] }>(g, `/api/jobs/${grid.jobId}/tasks?limit=10000`)).body.items.find((t) => t.name === 'make')!
      assert.equal(rerun.attempts, 2)
      assert.notEqual(rerun.peer, holder)
      const fromElsewhere = (data.bytesIn - bytesInBefore - fromHolder) + relayed
      assert.ok(fromElsewhere >= size, `after the kill, ${fromElsewhere} of ${size} bytes came from elsewhere`)
      t.diagnostic(`holder killed at ${atKill} bytes received; ${fromHolder} came from it in all, ${fromElsewhere} from the rebuilt copy (${relayed} of them relayed)`)
    })
  })

  it('refuses a forged grant, and a grant for another object, at the holder', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'])
      const peer = (grid as unknown as { peer: Peer }).peer
      const plans: PullPlanMsg[] = []
      const objects = peer.objects as unknown as { onPullPlan(m: PullPlanMsg): void }
      const original = objects.onPullPlan.bind(objects)
      objects.onPullPlan = (m) => { plans.push(m); original(m) }
      const make = grid.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const mine = make.remote(200_000, 1)
      const other = make.remote(200_000, 2)
      assert.equal((await grid.get(mine)).length, 200_000) // this driver got a genuine grant for `mine`
      await grid.wait([other])
      const plan = plans.find((p) => p.id === mine.id)!
      const genuine: Grant = plan.holders[0].grant
      const data = peer.data!
      // The grant for `mine` presented to read `other`: refused.
      await assert.rejects(data.fetch({ ...plan, id: other.id }), /grant refused/)
      // A grant with its object changed (so its signature no longer matches): refused.
      await assert.rejects(data.fetch({ ...plan, id: other.id, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, obj: other.id } }] }), /grant refused/)
      // An expired one: refused.
      await assert.rejects(data.fetch({ ...plan, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, exp: Date.now() - 1 } }] }), /grant refused/)
      // The genuine one still works.
      assert.equal((await data.fetch(plan)).byteLength, plan.size)
    })
  })
})

/**
 * A browser page served over plain HTTP on a LAN address is not a secure context: it has no
 * `crypto.subtle`. A Node peer started like this is in the same place: no WebCrypto (no
 * globalThis.crypto), and no node:crypto for the shared hashing either, so it hashes and checks
 * grants with @noble/hashes, as such a page does. (Its data plane still hashes with node:crypto,
 * as every Node peer's does.)
 */
const INSECURE = { NODE_OPTIONS: '--no-experimental-global-webcrypto --import=data:text/javascript,delete%20process.getBuiltinModule' }
const MIB = 1024 * 1024
/** The default connect timeout (not the tests' 1.5 s): on a busy machine a channel may take longer, and these tests count what went peer to peer. */
const PATIENT = { COLONY_RTC_CONNECT_TIMEOUT_MS: '5000' }

/** A MiB of bytes that depend on `v`, and a checksum of every byte's value and place. */
const makeFn = function make(n: number, v: number) { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * v + (i >> 8)) & 255; return b }
const sumFn = function sum(b: Uint8Array) { let s = 0; for (let i = 0; i < b.length; i++) s = (s + b[i] * ((i % 997) + 1)) % 1_000_003; return s }
const want = (v: number) => sumFn(makeFn(MIB, v))

describe('a peer without WebCrypto (a page that is not a secure context)', () => {
  // In this process the shared functions take node:crypto; the peers below run without it (and without WebCrypto).
  it('hashes and signs with @noble/hashes (what pages use) exactly as node:crypto does', async () => {
    const bytes = makeFn(3 * MIB + 12_345, 17)
    const want = createHash('sha256').update(bytes).digest('hex')
    const h = nobleSha256Stream()
    for (let off = 0; off < bytes.length; off += 61_440) h.update(bytes.subarray(off, off + 61_440))
    assert.equal(h.digest(), want)
    assert.equal(sha256HexSync(bytes), want)
    assert.equal(await sha256Hex(bytes), want)
    const key = new Uint8Array(32).map((_, i) => i * 7)
    const g = { obj: 'o.x', job: 'j_1', to: 'p_a', holder: 'p_b', exp: Date.now() + 60_000 }
    const sig = createHmac('sha256', key).update(grantPayload(g)).digest('hex')
    assert.equal(hmacSha256Hex(key, grantPayload(g)), sig)
    assert.equal(bytesToHex(hmac(sha256, key, new TextEncoder().encode(grantPayload(g)))), sig)
    assert.equal(verifyGrantSync({ ...g, sig }, key, g), true)
    assert.equal(verifyGrantSync({ ...g, sig: sig.replace(/^./, (c) => (c === '0' ? '1' : '0')) }, key, g), false)
    assert.equal(verifyGrantSync(undefined as unknown as Grant, key, g), false)
  })

  it('returns, serves and reads 1 MiB objects peer to peer, with nothing relayed and no stall', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'], { env: PATIENT })
      await g.addWorker(1, ['--capabilities', 'b'], { env: { ...INSECURE, ...PATIENT } })
      const makeA = grid.remote(makeFn, { capabilities: ['a'] }), makeB = grid.remote(makeFn, { capabilities: ['b'] })
      const sumA = grid.remote(sumFn, { capabilities: ['a'] }), sumB = grid.remote(sumFn, { capabilities: ['b'] })
      // Made on the peer without WebCrypto (it hashes its result), read on the other: it checks the grant and serves.
      const fromInsecure = makeB.remote(MIB, 3)
      assert.equal(await grid.get(sumA.remote(fromInsecure), { timeoutMs: 10_000 }), want(3))
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0, 'it served its result peer to peer')
      // Made on the other peer, read on the one without WebCrypto.
      const toInsecure = makeA.remote(MIB, 5)
      assert.equal(await grid.get(sumB.remote(toInsecure), { timeoutMs: 10_000 }), want(5))
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0, 'it read an object peer to peer')
      // This driver reads from it too, checking the bytes with @noble/hashes as they arrive, as a browser does.
      const data = (grid as unknown as { peer: Peer }).peer.data as unknown as { newHash: () => unknown }
      data.newHash = nobleSha256Stream
      assert.equal(sumFn(await grid.get(fromInsecure, { timeoutMs: 10_000 })), want(3))
      assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0, 'this driver read it peer to peer')
    })
  })

  it('hashes its results and checks what the relay brings it, when it has no data channels', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'])
      await g.addWorker(1, ['--capabilities', 'b', '--relay'], { env: INSECURE })
      const makeA = grid.remote(makeFn, { capabilities: ['a'] }), makeB = grid.remote(makeFn, { capabilities: ['b'] })
      const sumA = grid.remote(sumFn, { capabilities: ['a'] }), sumB = grid.remote(sumFn, { capabilities: ['b'] })
      assert.equal(await grid.get(sumA.remote(makeB.remote(MIB, 7)), { timeoutMs: 15_000 }), want(7))
      assert.equal(await grid.get(sumB.remote(makeA.remote(MIB, 9)), { timeoutMs: 15_000 }), want(9))
      assert.ok(await metric(g, 'colony_relayed_bytes_total') >= 2 * MIB)
    })
  })
})

describe('failed transfers settle at once', () => {
  it('a transfer that does not match its hash is refused, naming object and holder, and the relay delivers instead', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'])
      const peer = (grid as unknown as { peer: Peer }).peer
      const objects = peer.objects as unknown as { onPullPlan(m: PullPlanMsg): void }
      const original = objects.onPullPlan.bind(objects)
      const plans: PullPlanMsg[] = []
      // The reader expects other bytes than the holder has: as if the holder's copy were corrupt.
      const wrong = '0'.repeat(64)
      objects.onPullPlan = (m) => { plans.push(m); original({ ...m, hash: wrong }) }
      const make = grid.remote(makeFn, { capabilities: ['a'] })
      const made = make.remote(MIB, 11)
      await grid.wait([made], { timeoutMs: 10_000 })
      const t0 = Date.now()
      assert.equal(sumFn(await grid.get(made, { timeoutMs: 10_000 })), want(11))
      assert.ok(Date.now() - t0 < 5_000, `the fallback took ${Date.now() - t0} ms`)
      assert.equal(plans.length, 1, 'the data plane was tried first')
      assert.ok(await metric(g, 'colony_relayed_bytes_total') >= MIB, 'the relay delivered it')
      // Straight to the data plane: the refusal says what and who.
      const plan = plans[0]
      const holder = plan.holders[0].peer
      await assert.rejects(peer.data!.fetch({ ...plan, hash: wrong }), (e: Error) => e.message.includes(made.id) && e.message.includes(holder) && /does not match its hash/.test(e.message))
    })
  })

  it('a holder that fails while serving answers the reader at once, and the reader takes the relay', async () => {
    await withGrid({ workers: 0, memory: true }, async (g, grid) => {
      await g.addWorker(1, ['--capabilities', 'a'], { env: PATIENT })
      const peer = (grid as unknown as { peer: Peer }).peer
      // This driver holds a 1 MiB put; serving it peer to peer fails (its store throws), through the relay it works.
      const ref = grid.put(makeFn(MIB, 13))
      const store = peer.store as unknown as { getFor(id: string, job: string): Uint8Array | undefined }
      const getFor = store.getFor.bind(store)
      let failed = 0
      store.getFor = (id, job) => { if (id === ref.id) { failed++; throw new Error('the disk under this store went away') } return getFor(id, job) }
      const sum = grid.remote(sumFn, { capabilities: ['a'] })
      const t0 = Date.now()
      // Well under the reader's 15 s stall timer: the holder's error reaches it at once.
      assert.equal(await grid.get(sum.remote(ref), { timeoutMs: 8_000 }), want(13))
      assert.ok(failed >= 1, 'the reader asked this driver peer to peer first')
      assert.ok(Date.now() - t0 < 8_000)
      assert.ok(await metric(g, 'colony_relayed_bytes_total') >= MIB, 'the relay delivered it')
    })
  })
})

describe('the TURN path', () => {
  it('delivers the object through a real TURN relay (coturn on loopback) when peers allow only relay candidates', async () => {
    const turn = await startCoturn({ ip: '127.0.0.1', port: await freePort(), auth: { user: 'colony', password: 'turn-test' } })
    try {
      const iceServers = JSON.stringify([{ urls: `turn:127.0.0.1:${turn.port}?transport=udp`, username: 'colony', credential: 'turn-test' }])
      await withPair(['--ice-relay-only'], async (g, grid) => {
        await bigAcross(grid)
        assert.equal(await metric(g, 'colony_relayed_bytes_total'), 0, 'nothing came through the coordinator')
        // Both peers allocated a relay on coturn, and coturn let the channel through to the other's relay address.
        assert.ok((turn.output().match(/ALLOCATE processed, success/g)?.length ?? 0) >= 2, 'both peers allocated on coturn')
        assert.match(turn.output(), /peer 127\.0\.0\.1 lifetime updated/, 'coturn relayed to the other peer')
      }, { COLONY_ICE_SERVERS: iceServers })
    } finally {
      await turn.stop()
    }
  })
})

describe('a data plane that is closed', () => {
  it('opens no connection again: a signal that comes while its peer leaves is ignored, a read fails at once', async () => {
    // Two data planes on real node-datachannel connections, signalling each other directly; B counts what it makes.
    const rtc = nodeRtc('127.0.0.1')
    let madeByB = 0
    const planes: { a?: DataPlane; b?: DataPlane } = {}
    const offers: unknown[] = []
    planes.a = new DataPlane((m) => offers.push(m.data), new LocalObjectStore(), { rtc })
    planes.b = new DataPlane((m) => planes.a!.onSignal('p_b', m.link, m.data), new LocalObjectStore(), { rtc: (o) => { madeByB++; return rtc(o) } })
    planes.a.configure('p_a', new Uint8Array(32), [])
    planes.b.configure('p_b', new Uint8Array(32), [])
    try {
      // A starts a link to B (a read of an object B would hold): its offer is what B will be sent.
      const read = planes.a.fetch({ t: 'pullPlan', id: 'o.x', size: 1, holders: [{ peer: 'p_b', grant: { object: 'o.x', reader: 'p_a', holder: 'p_b', exp: Date.now() + 60_000, sig: '' } }] } as unknown as PullPlanMsg).catch((e: Error) => e)
      await until(async () => offers.length > 0, 10_000, 'A\'s offer')
      planes.b.close()
      for (const data of offers.splice(0)) planes.b.onSignal('p_a', 'p_a-1', data)
      assert.equal(madeByB, 0, 'B made a connection after it closed')
      assert.equal(planes.b.linkCount, 0)
      planes.a.close()
      assert.ok((await read) instanceof Error)
      // And a read it is asked for fails at once, naming why.
      const late = await planes.b.fetch({ t: 'pullPlan', id: 'o.y', size: 1, holders: [{ peer: 'p_a', grant: {} }] } as unknown as PullPlanMsg).catch((e: Error) => e)
      assert.match(String(late), /data plane is closed/)
      assert.equal(madeByB, 0)
    } finally { planes.a.close(); planes.b.close() }
  })
})
