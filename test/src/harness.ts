/**
 * Test harness: real coordinator and worker processes on loopback, started through
 * the CLI exactly as a person would, and waited on by what they print.
 */
import { after } from 'node:test'
import { ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect, type Grid } from '@colony-grid/client'

// Tests keep WebRTC on loopback: no packet goes to any other address (see PLATFORM.md).
process.env.COLONY_RTC_BIND_ADDRESS ??= '127.0.0.1'
// A data channel that cannot form on loopback never will: give up quickly and use the relay.
process.env.COLONY_RTC_CONNECT_TIMEOUT_MS ??= '1500'

// A test file whose tests are done but whose process stays (a child, a socket or a timer
// left open) would wait out the runner's 180 s and say only "timed out": say what is still open.
if (process.env.NODE_TEST_CONTEXT) after(() => {
  const watchdog = setTimeout(() => {
    const children = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
      .filter((h): h is ChildProcess => h instanceof ChildProcess).map((c) => `pid ${c.pid}: ${c.spawnargs.join(' ').slice(0, 200)}`)
    console.error(`[harness] 30 s after its last test this file is still running; open: ${process.getActiveResourcesInfo().join(', ')}${children.length ? `\n  children:\n  ${children.join('\n  ')}` : ''}`)
    process.exit(1)
  }, 30_000)
  watchdog.unref()
})

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI = join(ROOT, "client", "bin", "colony.js")

export interface Proc {
  child: ChildProcess
  output(): string
  /** Resolves with the first match of `re` in the output, or rejects at the deadline. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  kill(signal?: NodeJS.Signals): Promise<void>
}

/** The CLI with `args`, as a process of its own; `ns`: in that network namespace (a machine of net/topology.ts); `node`: another Node binary. */
export function startProc(args: string[], opts: { cwd?: string; env?: Record<string, string>; ns?: string; node?: string } = {}): Proc {
  // COLONY_PROFILE_DIR=dir writes a CPU profile of every coordinator and peer process there.
  const prof = process.env.COLONY_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.COLONY_PROFILE_DIR}`] : []
  const node = opts.node ?? process.execPath
  const [file, argv] = opts.ns ? ['ip', ['netns', 'exec', opts.ns, node, ...prof, CLI, ...args]] : [node, [...prof, CLI, ...args]]
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer) => { out += d.toString(); for (const l of listeners) l() }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  return {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re)
          if (m) { done(); resolve(m) }
        }
        const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} in:\n${out.slice(-3000)}`)) }, timeoutMs)
        const onExit = () => { setImmediate(() => { if (!out.match(re)) { done(); reject(new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out.slice(-3000)}`)) } }) }
        const done = () => { clearTimeout(timer); listeners.delete(check); child.off('exit', onExit) }
        listeners.add(check)
        child.once('exit', onExit)
        check()
      })
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    },
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
    srv.once('error', reject)
  })
}

export interface GridProcs {
  url: string
  port: number
  submitToken: string
  /** The join token anyone may volunteer with: its workers are anonymous. */
  joinToken: string
  /** The trusted join token (for the operator's own machines): its workers may run a job's main. */
  trustedToken: string
  dataDir: string
  coordinator: Proc
  workers: Proc[]
  workerIds: string[]
  startCoordinator(): Promise<void>
  /**
   * A Node worker process. It joins with the trusted join token (the tests' own machines) unless
   * `trusted: false`: then with the plain join token, as an anonymous volunteer. `env`: added to its environment
   * (NODE_OPTIONS, say).
   */
  addWorker(executors?: number, args?: string[], opts?: { trusted?: boolean; env?: Record<string, string> }): Promise<Proc>
  stop(): Promise<void>
}

/** A coordinator (SQLite in a fresh folder unless `memory`) and `workers` Node peers, each its own process. */
export async function startGrid(opts: { workers?: number; executors?: number; memory?: boolean; env?: Record<string, string> } = {}): Promise<GridProcs> {
  const dataDir = mkdtempSync(join(tmpdir(), 'colony-test-'))
  const port = await freePort()
  const g: GridProcs = {
    url: `http://127.0.0.1:${port}`, port, submitToken: '', joinToken: '', trustedToken: '', dataDir,
    coordinator: undefined as unknown as Proc, workers: [], workerIds: [],
    async startCoordinator() {
      const args = ['start', '--port', String(port), '--data', dataDir]
      if (opts.memory) args.push('--memory')
      g.coordinator = startProc(args, { env: { COLONY_RECONCILE_MS: '3000', ...opts.env } })
      const m = await g.coordinator.waitFor(/submit token: (\w+)\s+join token:\s+(\w+)\s+trusted join token:\s+(\w+)/)
      g.submitToken = m[1]
      g.joinToken = m[2]
      g.trustedToken = m[3]
    },
    async addWorker(executors = opts.executors ?? 1, args: string[] = [], { trusted = true, env }: { trusted?: boolean; env?: Record<string, string> } = {}) {
      const token = trusted ? g.trustedToken : g.joinToken
      const w = startProc(['worker', '--url', g.url, '--token', token, '--executors', String(executors), ...(trusted ? ['--trusted'] : []), ...args], { env })
      const m = await w.waitFor(/joined \S+ as (p_\w+)/)
      g.workers.push(w)
      g.workerIds.push(m[1])
      return w
    },
    async stop() {
      await Promise.all(g.workers.map((w) => w.kill('SIGTERM')))
      await g.coordinator?.kill('SIGTERM')
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
  await g.startCoordinator()
  for (let i = 0; i < (opts.workers ?? 2); i++) await g.addWorker()
  return g
}

/** Runs `body` with a fresh grid and a connected driver, and tears both down whatever happens. */
export async function withGrid(
  opts: Parameters<typeof startGrid>[0],
  body: (g: GridProcs, grid: Grid & { jobId: string }) => Promise<void>,
): Promise<void> {
  const g = await startGrid(opts)
  try {
    const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      await body(g, grid)
    } catch (e) {
      // What the processes said is usually the fastest way to the cause of a failure.
      const tails = [['coordinator', g.coordinator], ...g.workers.map((w, i) => [`worker ${g.workerIds[i]}`, w] as const)]
        .map(([name, p]) => `--- ${name} ---\n${(p as Proc).output().slice(-3000)}`).join('\n')
      if (e instanceof Error) e.message += `\n${tails}`
      throw e
    } finally { await grid.close() }
  } finally {
    await g.stop()
  }
}

/** Polls an HTTP condition until it holds; for state that has no event to wait on. */
export async function until<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function api<T = unknown>(g: { url: string; submitToken: string }, path: string, init: RequestInit & { token?: string } = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(path, g.url), {
    ...init, headers: { authorization: `Bearer ${init.token ?? g.submitToken}`, 'content-type': 'application/json', ...init.headers },
  })
  const text = await res.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch { /* text */ }
  return { status: res.status, body: body as T }
}

export async function metric(g: { url: string }, name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', g.url))).text()
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text)
  return m ? Number(m[1]) : NaN
}
