/**
 * Job code on a Node peer stays in its sandbox: no files outside its job's folder, no processes,
 * no secrets, no signals to anything outside its executor, no network, a cap on all its memory,
 * no leftovers; and it cannot keep another job off its peer. Attacks are made as a job author
 * would, through ordinary tasks and bundles, on a real coordinator and Node peer processes.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { connect as tcpConnect, createServer as createUnixServer } from 'node:net'
import { networkInterfaces } from 'node:os'
import { dirname, join } from 'node:path'
import { connect, TaskError, type Grid } from '@colony-grid/client'
import { ROOT, api, startGrid, startProc, until, type GridProcs, type Proc } from './harness.js'

let g: GridProcs
let grid: Grid

before(async () => {
  g = await startGrid({ workers: 1, executors: 1 })
  grid = await connect(g.url, { token: g.submitToken, onLog: false })
})
after(async () => { await grid?.close(); await g?.stop() })

/** The peer's private folder, as it says at start. */
function folderOf(w: Proc): string {
  const m = /executors: .*; folder (\S+)/.exec(w.output())
  assert.ok(m, `the peer names its folder:\n${w.output().slice(-2000)}`)
  return m[1]
}

/** A second user: a submit token of its own, made with the operator's. */
async function newUser(label: string): Promise<string> {
  const r = await api<{ token: string }>(g, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: 'submit', label }) })
  assert.equal(r.status, 201)
  return r.body.token
}

/** Is something on 127.0.0.1:port accepting connections, as seen from this test process? */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** Does an inspector on 9229 belong to process `pid`? (Another one there is none of this test's business.) */
async function inspectorOf(pid: number): Promise<boolean> {
  if (!await listening(9229)) return false
  const list = await fetch('http://127.0.0.1:9229/json/list').then((r) => r.text(), () => '')
  return list.includes(`[${pid}]`) // an inspector's title is \`<process title>[<pid>]\`
}

/** A submitted bundle job's end: its state, result and error. */
async function jobEnd(id: string, token = g.submitToken): Promise<{ state: string; result?: unknown; error?: { message: string } }> {
  return until(async () => {
    const j = (await api<{ state: string; result?: unknown; error?: { message: string } }>(g, `/api/jobs/${id}`, { token })).body
    return j.state !== 'running' && j
  }, 30_000, `job ${id} to end`)
}

describe('the Node sandbox', () => {
  it('cannot read the coordinator\'s tokens or any file outside the sandbox', async () => {
    const read = grid.remote(async (path: string) => {
      const fs = await import('node:fs')
      return fs.readFileSync(path, 'utf8')
    })
    for (const path of [join(g.dataDir, 'tokens.json'), '/etc/hostname', join(process.cwd(), 'package.json')]) {
      await assert.rejects(grid.get(read.remote(path)), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED|denied/i.test(e.message + e.remoteStack), path)
    }
  })

  it('cannot start processes', async () => {
    const run = grid.remote(async () => {
      const cp = await import('node:child_process')
      return cp.execSync('id').toString()
    })
    await assert.rejects(grid.get(run.remote()), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED|denied/i.test(e.message + e.remoteStack))
  })

  it('never shares an executor with another job: what one job leaves in memory, another cannot see', async () => {
    const other = await connect(g.url, { token: g.submitToken, onLog: false })
    try {
      // Executors are PID 1 of namespaces of their own, so each is told apart by its start time and folder.
      const leave = grid.remote(() => { (globalThis as Record<string, unknown>).leftBehind = 'job A\'s secret'; return [performance.timeOrigin, process.cwd()] })
      const look = other.remote(() => [(globalThis as Record<string, unknown>).leftBehind ?? null, performance.timeOrigin, process.cwd()])
      const [startA, cwdA] = await grid.get(leave.remote())
      const [seen, startB, cwdB] = await other.get(look.remote())
      assert.equal(seen, null)
      assert.notEqual(startB, startA)
      assert.notEqual(cwdB, cwdA, 'each job has a folder of its own')
      // And back: job A gets an executor of its own again, and the grid goes on.
      assert.equal(await grid.get(grid.remote((x: number) => x + 1).remote(1)), 2)
    } finally { await other.close() }
  })

  it('cannot load a native addon (which the permission model would not confine)', async () => {
    const addon = join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
    const load = grid.remote((path: string) => { process.dlopen({ exports: {} } as NodeJS.Module, path); return 'loaded' })
    await assert.rejects(grid.get(load.remote(addon)), (e: unknown) => e instanceof TaskError && /ERR_DLOPEN_DISABLED|ERR_ACCESS_DENIED|not allowed|denied/i.test(e.message + e.remoteStack))
  })

  it('reads the ML runtimes it needs, and nothing else of the machine, through colony.ml', async () => {
    const backends = grid.remote(async () => (globalThis as unknown as { colony: { ml: { backends(): unknown; tf(): Promise<{ getBackend(): string }> } } }).colony.ml.tf().then((tf) => tf.getBackend()))
    assert.equal(await grid.get(backends.remote()), 'wasm')
    const native = grid.remote(async () => (globalThis as unknown as { colony: { ml: { session(m: string, o: object): Promise<unknown> } } }).colony.ml.session('/etc/hostname', { backend: 'native' }))
    await assert.rejects(grid.get(native.remote()), /native backend takes the model's bytes, not a path/)
  })

  it('sees none of the peer\'s environment, so no token', async () => {
    const env = grid.remote(() => JSON.stringify(process.env))
    const seen = await grid.get(env.remote())
    assert.ok(!seen.includes(g.joinToken) && !seen.includes(g.submitToken))
    assert.ok(!/COLONY/.test(seen))
  })

  it('cannot read the peer\'s command line (which holds --token) through /proc', async () => {
    const steal = grid.remote(async () => {
      const fs = await import('node:fs')
      return fs.readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8')
    })
    await assert.rejects(grid.get(steal.remote()), (e: unknown) => e instanceof TaskError && /ERR_ACCESS_DENIED/.test(e.message))
    const argv = grid.remote(() => process.argv.join(' ') + process.execArgv.join(' '))
    const seen = await grid.get(argv.remote())
    assert.ok(!seen.includes(g.joinToken), 'the executor\'s own argv holds no token')
  })
})

describe('the Node sandbox against a hostile job', () => {
  it('cannot open its peer\'s inspector with SIGUSR1 (then run code as the peer): it sees no process but itself, and reaches no port', async () => {
    const worker = g.workers[0].child.pid!
    const escape = grid.remote(async function escape(port: number, outside: number[]) {
      const kills: Record<string, string> = {}
      // Its parent, and its process group (kill(0) crosses PID namespaces: the group must be its own).
      for (const pid of [process.ppid, 0]) {
        try { process.kill(pid, 'SIGUSR1'); kills[pid] = 'sent' } catch (e) { kills[pid] = (e as NodeJS.ErrnoException).code ?? String(e) }
      }
      // Signal 0 only asks whether a process exists: can it see the peer, the coordinator, this test?
      const visible = outside.filter((pid) => { try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code !== 'ESRCH' } })
      await new Promise((r) => setTimeout(r, 500)) // an inspector takes a moment to listen
      const inspector = await fetch('http://127.0.0.1:9229/json/list').then((r) => r.text(), (e: Error) => `failed: ${(e.cause as NodeJS.ErrnoException)?.code ?? e.message}`)
      const net = await import('node:net')
      const tcp = await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1')
        s.once('connect', () => { s.destroy(); resolve('connected') })
        s.once('error', (e: NodeJS.ErrnoException) => resolve(`failed: ${e.code}`))
      })
      return { ppid: process.ppid, kills, visible, inspector, tcp }
    })
    const r = await grid.get(escape.remote(g.port, [worker, g.coordinator.child.pid!, process.pid]), { timeoutMs: 30_000 })
    assert.match(r.inspector, /^failed/, `the task reached an inspector: ${r.inspector.slice(0, 300)}`)
    assert.match(r.tcp, /^failed/, 'the task reached the coordinator\'s port')
    assert.deepEqual(r.visible, [], `it sees no process outside its executor (kills: ${JSON.stringify(r.kills)})`)
    assert.equal(r.ppid, 0, 'its parent is outside its PID namespace')
    assert.equal(await inspectorOf(worker), false, 'no inspector of the peer listens on 9229')
    // The peer itself ignores SIGUSR1, whoever sends it, and says so.
    g.workers[0].child.kill('SIGUSR1')
    await g.workers[0].waitFor(/ignoring SIGUSR1/, 10_000)
    assert.equal(await inspectorOf(worker), false, 'no inspector after a SIGUSR1 straight to the peer')
    assert.equal(await grid.get(grid.remote(() => 'still healthy').remote(), { timeoutMs: 20_000 }), 'still healthy')
  })

  it('cannot kill its peer or the coordinator by pid: the grid goes on with the same worker', async () => {
    const before = (await api<{ id: string; role: string }[]>(g, '/api/peers')).body.filter((p) => p.role === 'worker').map((p) => p.id)
    const killer = grid.remote(function killer(pids: number[]) {
      const out: Record<string, string> = {}
      for (const pid of pids) {
        try { process.kill(pid, 'SIGKILL'); out[pid] = 'sent' } catch (e) { out[pid] = (e as NodeJS.ErrnoException).code ?? String(e) }
      }
      return out
    })
    // The peer's and the coordinator's real pids, which the test hands it; 1 is the executor itself.
    const pids = [g.workers[0].child.pid!, g.coordinator.child.pid!, 1]
    const out = await grid.get(killer.remote(pids), { timeoutMs: 20_000 })
    assert.equal(out[pids[0]], 'ESRCH', 'the peer\'s pid names no process it can see')
    assert.equal(out[pids[1]], 'ESRCH', 'nor does the coordinator\'s')
    assert.equal(g.workers[0].child.exitCode, null, 'the peer runs')
    assert.equal(g.coordinator.child.exitCode, null, 'the coordinator runs')
    assert.equal(await grid.get(grid.remote(() => 'after the kill').remote(), { timeoutMs: 20_000 }), 'after the kill')
    const after = (await api<{ id: string; role: string }[]>(g, '/api/peers')).body.filter((p) => p.role === 'worker').map((p) => p.id)
    assert.deepEqual(after, before, 'the same worker, never gone')
  })

  it('cannot open a TCP connection to the coordinator, on loopback or on the machine\'s own addresses', async () => {
    const own = Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a!.address)
    const dial = grid.remote(async function dial(hosts: string[], port: number) {
      const net = await import('node:net')
      const out: string[] = []
      for (const host of hosts) {
        out.push(await new Promise<string>((resolve) => {
          const s = net.connect(port, host)
          s.setTimeout(3000, () => { s.destroy(); resolve(`${host}: timed out`) })
          s.once('connect', () => { s.destroy(); resolve(`${host}: connected`) })
          s.once('error', (e: NodeJS.ErrnoException) => resolve(`${host}: ${e.code}`))
        }))
      }
      const http = await fetch(`http://127.0.0.1:${port}/api/peers`).then((r) => `HTTP ${r.status}`, () => 'failed')
      return { out, http }
    })
    const r = await grid.get(dial.remote(['127.0.0.1', ...own], g.port), { timeoutMs: 30_000 })
    for (const line of r.out) assert.doesNotMatch(line, /connected/, line)
    assert.equal(r.http, 'failed')
  })

  it('cannot reach a Unix socket under /run (a volunteer\'s D-Bus session or docker socket lives there), even one anyone may use', async () => {
    const path = `/run/colony-test-${process.pid}.sock`
    const server = createUnixServer((c) => { c.end('hello from outside the sandbox') })
    await new Promise<void>((r) => server.listen(path, r))
    chmodSync(path, 0o777)
    try {
      // The control: this process reaches it.
      const direct = await new Promise<string>((resolve) => { const c = tcpConnect(path); c.once('data', (d) => { c.destroy(); resolve(d.toString()) }); c.once('error', (e) => resolve(e.message)) })
      assert.equal(direct, 'hello from outside the sandbox')
      const knock = grid.remote(async function knock(p: string) {
        const net = await import('node:net')
        return new Promise<string>((resolve) => {
          const c = net.connect(p)
          c.once('data', (d) => { c.destroy(); resolve(`read: ${d}`) })
          c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
        })
      })
      assert.equal(await grid.get(knock.remote(path), { timeoutMs: 20_000 }), 'ENOENT')
    } finally { server.close() }
  })

  it('cannot hold 4 GiB in a Buffer (outside the V8 heap): its task fails plainly, and the next runs', async () => {
    const hog = grid.remote(function hog() { return Buffer.alloc(4 * 1024 ** 3).length })
    await assert.rejects(grid.get(hog.remote(), { timeoutMs: 30_000 }), (e: unknown) =>
      e instanceof TaskError && /allocation failed|out of memory|Invalid array length|RangeError/i.test(e.message))
    assert.equal(await grid.get(grid.remote(() => 'next ran').remote(), { timeoutMs: 20_000 }), 'next ran')
  })

  it('cannot write a trace_events file into its peer\'s working directory (the permission model does not stop trace_events)', async () => {
    const traces = () => new Set(readdirSync(ROOT).filter((f) => /^node_trace\./.test(f)))
    const before = traces()
    const trace = grid.remote(async function trace() {
      const te = await import('node:trace_events')
      const t = te.createTracing({ categories: ['node', 'v8'] })
      t.enable()
      await new Promise((r) => setTimeout(r, 1000))
      t.disable()
      return process.cwd()
    }, { timeoutMs: 5000 })
    // Its cwd is its own job's folder, which it cannot write: it fails, or hangs until its time limit.
    const outcome = await grid.get(trace.remote(), { timeoutMs: 30_000 }).then((cwd) => `ran in ${cwd}`, (e: Error) => `failed: ${e.message}`)
    const made = [...traces()].filter((f) => !before.has(f))
    for (const f of made) rmSync(join(ROOT, f), { force: true })
    assert.deepEqual(made, [], `a trace file appeared in the peer's cwd (${outcome})`)
    assert.doesNotMatch(outcome, new RegExp(`ran in ${ROOT}$`))
    assert.equal(await grid.get(grid.remote(() => 'next ran').remote(), { timeoutMs: 20_000 }), 'next ran')
  })

  it('cannot list or read another job\'s bundle on the same peer', async () => {
    const bundleA = `
      export const SECRET = 'job A keeps this to itself'
      export default async function main() { return { url: import.meta.url, secret: SECRET } }`
    const a = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: bundleA, name: 'bundle-a' }) })
    assert.equal(a.status, 201, JSON.stringify(a.body))
    const endA = await jobEnd(a.body.id)
    assert.equal(endA.state, 'finished', JSON.stringify(endA))
    const urlA = (endA.result as { url: string }).url
    const bundleB = `
      export default async function main(grid, urlA) {
        const fs = await import('node:fs'), path = await import('node:path'), url = await import('node:url')
        const fileA = url.fileURLToPath(urlA), mine = url.fileURLToPath(import.meta.url)
        const tryIt = (f) => { try { return 'ok: ' + JSON.stringify(f()) } catch (e) { return 'denied: ' + (e.code ?? e.message) } }
        return {
          readA: tryIt(() => fs.readFileSync(fileA, 'utf8')),
          listA: tryIt(() => fs.readdirSync(path.dirname(fileA))),
          listJobs: tryIt(() => fs.readdirSync(path.dirname(path.dirname(fileA)))),
          listPeer: tryIt(() => fs.readdirSync(path.dirname(path.dirname(path.dirname(fileA))))),
          importA: await import(urlA).then((m) => 'ok: ' + m.SECRET, (e) => 'denied: ' + (e.code ?? e.message)),
          listMine: tryIt(() => fs.readdirSync(path.dirname(mine))),
        }
      }`
    const b = await api<{ id: string }>(g, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: bundleB, name: 'bundle-b', args: [urlA] }) })
    assert.equal(b.status, 201, JSON.stringify(b.body))
    const endB = await jobEnd(b.body.id)
    assert.equal(endB.state, 'finished', JSON.stringify(endB))
    const r = endB.result as Record<string, string>
    for (const k of ['readA', 'listA', 'listJobs', 'listPeer', 'importA']) assert.match(r[k], /^denied: ERR_ACCESS_DENIED/, `${k}: ${r[k]}`)
    assert.match(r.listMine, /^ok: /, 'it lists its own folder')
    assert.doesNotMatch(r.listMine, new RegExp(urlA.replace(/^.*\//, '')), 'which holds only its own bundle')
  })

  it('one job\'s endless tasks on a 1-executor peer do not keep another job\'s task from running', async () => {
    const alice = await connect(g.url, { token: await newUser('alice'), onLog: false, log: () => {} })
    const bob = await connect(g.url, { token: await newUser('bob'), onLog: false, log: () => {} })
    try {
      const spin = alice.remote(function spin() { for (;;) { /* never returns */ } }, { timeoutMs: 60_000 })
      const endless = [spin.remote(), spin.remote()]
      await until(async () => (await api<{ items: { state: string }[] }>(g, `/api/jobs/${alice.jobId}/tasks?limit=10000`)).body.items.some((t) => t.state === 'running'), 10_000, 'alice\'s tasks to run')
      const started = Date.now()
      assert.equal(await bob.get(bob.remote(function hello() { return 'hello from bob' }).remote(), { timeoutMs: 15_000 }), 'hello from bob')
      assert.ok(Date.now() - started < 15_000, `bob waited ${Date.now() - started} ms`)
      void endless
    } finally {
      await api(g, `/api/jobs/${alice.jobId}`, { method: 'DELETE' })
      await alice.close(); await bob.close()
    }
    assert.equal(await grid.get(grid.remote(() => 'the peer is free again').remote(), { timeoutMs: 20_000 }), 'the peer is free again')
  })

  it('leaves no folder behind: its executor script and job folders live in the peer\'s folder, which goes when the peer stops', async () => {
    const w = await g.addWorker(1, ['--capabilities', 'leftovers'])
    const folder = folderOf(w)
    assert.ok(existsSync(folder))
    const where = grid.remote(() => [process.argv[1], process.cwd()], { capabilities: ['leftovers'] })
    const [script, cwd] = await grid.get(where.remote(), { timeoutMs: 20_000 })
    assert.equal(dirname(script), folder, 'the executor script is in the peer\'s folder (no colony-executor-* of its own)')
    assert.ok(cwd.startsWith(join(folder, 'jobs') + '/'), `its cwd ${cwd} is its job's folder`)
    await w.kill('SIGTERM')
    assert.equal(existsSync(folder), false, `${folder} was left behind`)
  })

  it('leaves no executor behind either, even when its peer is killed with SIGKILL; the next peer removes that one\'s folder', async () => {
    const w = await g.addWorker(1, ['--capabilities', 'orphans'])
    const folder = folderOf(w)
    const running = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(folder) } catch { return false }
    })
    const spin = grid.remote(function spin() { for (;;) { /* never returns */ } }, { capabilities: ['orphans'], timeoutMs: 60_000 })
    const ref = spin.remote()
    await until(async () => running().length > 0, 10_000, 'the executor to start')
    await w.kill('SIGKILL')
    try {
      await until(async () => running().length === 0, 10_000, 'the executor to end with its peer')
      // A peer killed with SIGKILL cannot remove its folder: the next one to start does.
      assert.ok(existsSync(folder))
      const next = await g.addWorker(1, ['--capabilities', 'orphans-next'])
      assert.equal(existsSync(folder), false, `${folder} of the killed peer is still there`)
      await next.kill('SIGTERM')
    } finally {
      grid.cancel(ref, { force: true })
      rmSync(folder, { recursive: true, force: true })
    }
  })

  it('a worker that cannot confine its executors says so and does not start, unless told --unconfined', async () => {
    // No unshare on PATH stands for a machine without namespaces.
    const env = { PATH: '/nonexistent' }
    const args = ['worker', '--url', g.url, '--token', g.trustedToken, '--executors', '1', '--capabilities', 'unconfined']
    const refused = startProc(args, { env })
    await refused.waitFor(/cannot be confined on this machine: .*unshare.*pass --unconfined/, 20_000)
    await until(async () => refused.child.exitCode !== null, 10_000, 'the worker to exit')
    assert.equal(refused.child.exitCode, 2)
    assert.doesNotMatch(refused.output(), /joined/)
    const w = startProc([...args, '--unconfined'], { env })
    try {
      await w.waitFor(/joined \S+ as p_/, 20_000)
      assert.match(w.output(), /NOT confined/)
      const where = grid.remote(() => process.cwd(), { capabilities: ['unconfined'] })
      assert.match(await grid.get(where.remote(), { timeoutMs: 20_000 }), /\/jobs\/j_/)
    } finally { await w.kill('SIGTERM') }
  })
})
