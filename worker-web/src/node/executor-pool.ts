/**
 * A Node peer's executors: child processes, each started for one job, under two layers.
 * - Node's permission model (`--experimental-permission`, `--permission` from Node 22.13): file reads only in that job's folder
 *   (sandbox-dir.ts), the executor script and the ML runtimes' folder; no writes, no child
 *   processes, no workers, no addons (unless --native-ml); a heap cap; an empty environment; its
 *   cwd is its job's folder, which it cannot write.
 * - The confinement found at start (confine.ts): on Linux, PID and network namespaces of its own
 *   (it can neither see nor signal the peer or other executors, nor connect anywhere), another uid,
 *   and RLIMIT_DATA over everything it allocates. Node 20's permission model alone stops neither
 *   signals nor the network.
 * Each executor is also the leader of a process group of its own: kill(0) reaches processes of the
 * caller's group even across PID namespaces, and the peer's group must not be it.
 * Where tasks go, timeouts and replacement are the shared pool's (core/executor-pool.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ToHost } from '../core/executor-protocol.js'
import { permissionFlag } from './permission-flag.js'
import { ExecutorPoolBase, type ExecutorHandle, type SpawnCallbacks } from '../core/executor-pool.js'
import { kill, type Confinement } from './confine.js'
import { mlFiles, type MlFiles } from './ml-files.js'
import { SandboxDir } from './sandbox-dir.js'
import { clip } from '@colony-grid/shared'

/** Lines of an executor's own output (outside any task's log) passed on to the peer's log. */
const OUTPUT_LINES = 50

export interface NodeExecutorOptions {
  executors: number
  /** How executors are confined (confine.ts: probeConfinement, or unconfined()). */
  confinement: Confinement
  /** Heap cap of each executor, in MB. Its cap on all writable memory is this plus 1024 MB (Buffers, wasm, Node itself). */
  memoryMb?: number
  /**
   * Let executors use onnxruntime-node where it is installed. It is a native addon, and
   * executors that may load addons are not sandboxed from native code: only for peers that
   * run trusted jobs.
   */
  nativeMl?: boolean
  log?: (line: string) => void
}

let executorCode: Promise<Uint8Array> | undefined

/** Bundles the executor entry into one file (built once per process, kept in memory), so the sandbox can read it without reading node_modules. */
async function buildExecutorScript(): Promise<Uint8Array> {
  const { build } = await import('esbuild')
  const entry = join(dirname(fileURLToPath(import.meta.url)), 'executor-main.js')
  const out = await build({
    entryPoints: [entry], outfile: 'executor.mjs', write: false, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    external: ['msgpackr-extract'], logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  })
  return out.outputFiles[0].contents
}

export class NodeExecutorPool extends ExecutorPoolBase {
  private readonly dir: SandboxDir
  private ml?: MlFiles
  private readonly children = new Set<ChildProcess>()

  constructor(private readonly opts: NodeExecutorOptions) {
    // A job's own executor takes all its tasks (async tasks interleave); a job with none may get an
    // extra one while other jobs hold every regular one (core/executor-pool.ts).
    super({ size: opts.executors, tasksPerExecutor: Infinity, maxExtra: Math.max(1, opts.executors), spawnPerJob: true },
      opts.log ?? ((l) => console.error(`[executors] ${l}`)))
    this.dir = new SandboxDir(opts.confinement.owner)
  }

  /** This peer's private folder. */
  get sandbox(): string { return this.dir.root }

  override async start(host: Parameters<ExecutorPoolBase['start']>[0]): Promise<void> {
    executorCode ??= buildExecutorScript()
    const [code, ml] = await Promise.all([executorCode, mlFiles()])
    this.dir.writeScript(code)
    this.ml = ml
    await super.start(host)
  }

  /** Where a job's bundle is written, in that job's folder, so only that job's executors may import it. */
  bundlePath(hash: string, job: string): string { return this.dir.bundlePath(job, hash) }
  bundleUrl(hash: string, job: string): string { return pathToFileURL(this.bundlePath(hash, job)).href }
  hasBundle(hash: string, job: string): boolean { return existsSync(this.bundlePath(hash, job)) }
  writeBundle(hash: string, job: string, bytes: Uint8Array): void { this.dir.writeBundle(job, hash, bytes) }

  /** A task's job gets its folder before the task queues: a job id that cannot name a folder fails here, once. */
  override run(task: Parameters<ExecutorPoolBase['run']>[0]): void {
    this.dir.jobDir(task.job)
    super.run(task)
  }

  protected spawn(cb: SpawnCallbacks, job?: string): ExecutorHandle {
    if (job === undefined) throw new Error('a Node executor is started for one job')
    const ml = this.ml!
    const cwd = this.dir.jobDir(job)
    const native = this.opts.nativeMl && ml.ortNodeDir ? ml : undefined
    const readable = [cwd, this.dir.script, ml.dir, ...(native?.ortNodeReadable ?? [])]
    const memoryMb = this.opts.memoryMb ?? 1024
    const { file, args } = this.opts.confinement.command([
      process.execPath,
      // No --allow-fs-write, --allow-child-process or --allow-worker: none of those.
      permissionFlag(), ...readable.map((dir) => `--allow-fs-read=${dir}`),
      // Only with --native-ml: addons run native code, which the permission model does not confine.
      ...(native ? ['--allow-addons'] : []),
      `--max-old-space-size=${memoryMb}`, '--enable-source-maps', '--no-warnings',
      // Arguments: where `colony.ml` finds its runtimes (see executor-main.ts).
      this.dir.script, ml.dir, native?.ortNodeDir ?? '',
    ], (memoryMb + 1024) * 1024 * 1024)
    // 'ipc' as a stdio entry: the channel's fd (and NODE_CHANNEL_FD) pass through unshare, setpriv and prlimit.
    const child = spawn(file, args, {
      cwd, detached: true,
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Job code gets none of the peer's environment (tokens may live there).
      env: { NODE_ENV: process.env.NODE_ENV ?? 'production', TZ: process.env.TZ ?? 'UTC' },
    })
    this.children.add(child)
    // What an executor writes past the task log (a crash, or job code writing to its stdout) reaches the
    // volunteer's terminal only cut, without control characters, and only so much of it.
    let lines = 0
    const relay = (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (!line.trim() || ++lines > OUTPUT_LINES) continue
        // eslint-disable-next-line no-control-regex
        this.say(`executor: ${clip(line.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' '), 500)}`)
        if (lines === OUTPUT_LINES) this.say('executor: (its further output is dropped)')
      }
    }
    child.stdout!.on('data', relay)
    child.stderr!.on('data', relay)
    child.on('message', (msgs: ToHost[]) => cb.onMessages(msgs))
    child.on('exit', (code, signal) => { this.children.delete(child); cb.onExit(`executor exited (${signal ?? `code ${code}`})`) })
    child.on('error', (err) => {
      this.say(`executor: ${err.message}`)
      // It never started (no 'exit' follows then).
      if (child.pid === undefined && this.children.delete(child)) cb.onExit(`executor could not start: ${err.message}`)
    })
    return {
      send: (msgs) => { if (child.connected) child.send(msgs) },
      // Its whole process group: unshare, and the executor under it (which also dies with unshare).
      kill: () => { kill(child.pid) },
    }
  }

  protected override async closed_(): Promise<void> {
    // The core pool has told every executor it knows to end. One it lost track of (seen once: an
    // executor of a job, alive after its peer was told to stop, with the coordinators gone) would be
    // waited for below for ever, and the worker stopped with SIGTERM would never exit: end them all.
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) kill(c.pid)
    await Promise.all([...this.children].map((c) => new Promise<void>((r) => {
      if (c.exitCode !== null || c.signalCode !== null) { r(); return }
      c.once('exit', () => r())
    })))
    this.dir.remove()
  }
}
