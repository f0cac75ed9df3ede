/**
 * Test harness: real coordinator and worker processes on loopback, started through
 * the CLI exactly as a person would, and waited on by what they print.
 */
import { after } from 'node:test'
import { ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect, type Grid } from '@colony-grid/client'
import { rtcCounts } from '@colony-grid/worker-web/node'

// Tests keep WebRTC on loopback: no packet goes to any other address (see PLATFORM.md).
process.env.COLONY_RTC_BIND_ADDRESS ??= '127.0.0.1'
// A data channel that cannot form on loopback never will: give up quickly and use the relay.
process.env.COLONY_RTC_CONNECT_TIMEOUT_MS ??= '1500'

// A test file whose tests are done but whose process stays (a child, a socket or a timer
// left open) would wait out the runner's 180 s and say only "timed out": say what is still open.
if (process.env.NODE_TEST_CONTEXT) after(() => {
  const watchdog = setTimeout(() => {
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()
    const children = handles.filter((h): h is ChildProcess => h instanceof ChildProcess).map((c) => `pid ${c.pid}: ${c.spawnargs.join(' ').slice(0, 200)}`)
    // What getActiveResourcesInfo cannot see: native threads (WebRTC's, wasm's) that keep a process alive, by name.
    const threads = new Map<string, number>()
    try {
      for (const t of readdirSync('/proc/self/task')) {
        const name = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim()
        threads.set(name, (threads.get(name) ?? 0) + 1)
      }
    } catch { /* not Linux */ }
    const rtc = rtcCounts
    console.error(`[harness] 30 s after its last test this file is still running; open: ${process.getActiveResourcesInfo().join(', ')}` +
      `; WebRTC connections made ${rtc.made}, closed ${rtc.closed}` +
      `; handles: ${handles.map((h) => (h as object)?.constructor?.name).join(', ')}; threads: ${[...threads].map(([n, k]) => `${n}×${k}`).join(', ')}` +
      `${children.length ? `\n  children:\n  ${children.join('\n  ')}` : ''}`)
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
  /**
   * How the process ended. Listened for from the start, so an exit that came before anyone
   * asks is not missed.
   */
  exited: Promise<Exit>
  /** Resolves with how the process ended, or rejects at the deadline (with its output). */
  waitExit(timeoutMs?: number): Promise<Exit>
  kill(signal?: NodeJS.Signals): Promise<void>
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** The CLI with `args`, as a process of its own; `ns`: in that network namespace (a machine of net/topology.ts); `node`: another Node binary. */
export function startProc(args: string[], opts: { cwd?: string; env?: Record<string, string>; ns?: string; node?: string } = {}): Proc {
  // COLONY_PROFILE_DIR=dir writes a CPU profile of every coordinator and peer process there.
  const prof = process.env.COLONY_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.COLONY_PROFILE_DIR}`] : []
  const node = opts.node ?? process.execPath
  const [file, argv] = opts.ns ? ['ip', ['netns', 'exec', opts.ns, node, ...prof, CLI, ...args]] : [node, [...prof, CLI, ...args]]
  return spawnProc(file, argv, { cwd: opts.cwd, env: opts.env })
}

/** Any program as a Proc: its output collected, its exit listened for from the start. */
export function spawnProc(file: string, argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Proc {
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer) => { out += d.toString(); for (const l of listeners) l() }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<Exit>((r) => child.once('exit', (code, signal) => r({ code, signal })))
  return {
    child,
    output: () => out,
    exited,
    waitExit(timeoutMs = 20_000) {
      let timer: ReturnType<typeof setTimeout> | undefined
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for the process to exit:\n${out.slice(-3000)}`)), timeoutMs)
      })
      return Promise.race([exited, late]).finally(() => clearTimeout(timer))
    },
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

/** Ports this process handed out: never twice. */
const handedOut = new Set<number>()

/** The low end of the kernel's ephemeral range: where listen(0) and outgoing connections take their ports. */
function ephemeralLow(): number {
  try { return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768 } catch { return 32768 }
}

/**
 * A TCP port free a moment ago, for a server that must be told its port before it starts and cannot
 * pick its own (coturn; a coordinator in another network namespace). It is closed before it is handed
 * out, so another process can still take it in between: a server that can pick its own port should
 * (startGrid starts its coordinator with `--port 0` and reads the port it printed). To make that rare,
 * the port is drawn at random from below the kernel's ephemeral range, where no listen(0) and no
 * outgoing connection of another process takes one, is checked free on every address, and is never
 * handed out twice by this process.
 */
export async function freePort(): Promise<number> {
  const high = Math.min(ephemeralLow(), 65536) - 1
  const low = Math.min(20_000, high - 1000)
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low + 1))
    if (handedOut.has(port)) continue
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer()
      srv.once('error', () => resolve(false))
      srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)))
    })
    if (free) { handedOut.add(port); return port }
  }
  throw new Error(`no free port between ${low} and ${high} after 200 tries`)
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
/** `store`: a Redis URL for the coordinator's `--store` (SQLite in `dataDir` otherwise). */
export async function startGrid(opts: { workers?: number; executors?: number; memory?: boolean; store?: string; env?: Record<string, string> } = {}): Promise<GridProcs> {
  const dataDir = mkdtempSync(join(tmpdir(), 'colony-test-'))
  const g: GridProcs = {
    url: '', port: 0, submitToken: '', joinToken: '', trustedToken: '', dataDir,
    coordinator: undefined as unknown as Proc, workers: [], workerIds: [],
    async startCoordinator() {
      // The first start lets the coordinator pick a free port itself (no port is picked, closed and handed
      // out, for another process to take meanwhile); a restart takes the same one, which peers reconnect to.
      const args = ['start', '--port', String(g.port), '--data', dataDir]
      if (opts.memory) args.push('--memory')
      if (opts.store) args.push('--store', opts.store)
      g.coordinator = startProc(args, { env: opts.env })
      const m = await g.coordinator.waitFor(/Colony coordinator on (http:\/\/\S+)[\s\S]*?submit token: (\w+)\s+join token:\s+(\w+)\s+trusted join token:\s+(\w+)/)
      const port = Number(new URL(m[1]).port)
      if (g.port && port !== g.port) throw new Error(`the coordinator came back on port ${port}, not ${g.port}`)
      g.port = port
      g.url = `http://127.0.0.1:${port}`
      g.submitToken = m[2]
      g.joinToken = m[3]
      g.trustedToken = m[4]
    },
    async addWorker(executors = opts.executors ?? 1, args: string[] = [], { trusted = true, env }: { trusted?: boolean; env?: Record<string, string> } = {}) {
      const token = trusted ? g.trustedToken : g.joinToken
      const w = startProc(['worker', '--url', g.url, '--token', token, '--executors', String(executors), ...(trusted ? ['--trusted'] : []), ...args], { env })
      const m = await w.waitFor(/joined \S+ as (p_\w+)/).catch(async (e: unknown) => { await w.kill('SIGKILL'); throw e })
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
  try {
    await g.startCoordinator()
    for (let i = 0; i < (opts.workers ?? 2); i++) await g.addWorker()
  } catch (e) {
    // Nobody gets this grid to stop: what did start must not outlive the test file.
    await g.stop()
    throw e
  }
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
