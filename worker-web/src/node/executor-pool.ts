/**
 * A Node peer's executors: child processes under Node's permission model
 * (`--experimental-permission`, file reads only inside a private sandbox folder and the
 * ML runtimes' folder, no child processes, a heap cap, an empty environment). Node 20's permission model
 * does not restrict the network: job code on a Node peer can open sockets.
 * Where tasks go, timeouts and replacement are the shared pool's (core/executor-pool.ts).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, mkdirSync, existsSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ToHost } from '../core/executor-protocol.js'
import { ExecutorPoolBase, type ExecutorHandle, type SpawnCallbacks } from '../core/executor-pool.js'
import { mlFiles, type MlFiles } from './ml-files.js'

export interface NodeExecutorOptions {
  executors: number
  /** Heap cap of each executor, in MB. */
  memoryMb?: number
  /**
   * Let executors use onnxruntime-node where it is installed. It is a native addon, and
   * executors that may load addons are not sandboxed from native code: only for peers that
   * run trusted jobs.
   */
  nativeMl?: boolean
  log?: (line: string) => void
}

let executorScript: Promise<string> | undefined

/** Bundles the executor entry into one file, so the sandbox can read it without reading node_modules. */
async function buildExecutorScript(dir: string): Promise<string> {
  const { build } = await import('esbuild')
  const entry = join(dirname(fileURLToPath(import.meta.url)), 'executor-main.js')
  const outfile = join(dir, 'executor.mjs')
  await build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20',
    external: ['msgpackr-extract'], logLevel: 'error',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  })
  return outfile
}

export class NodeExecutorPool extends ExecutorPoolBase {
  readonly sandbox: string
  private script?: string
  private ml?: MlFiles
  private readonly children = new Set<ChildProcess>()

  constructor(private readonly opts: NodeExecutorOptions) {
    super({ size: opts.executors, tasksPerExecutor: Infinity, maxExtra: 0 }, opts.log ?? ((l) => console.error(`[executors] ${l}`)))
    this.sandbox = mkdtempSync(join(tmpdir(), 'colony-peer-'))
    mkdirSync(join(this.sandbox, 'bundles'))
  }

  override async start(host: Parameters<ExecutorPoolBase['start']>[0]): Promise<void> {
    executorScript ??= buildExecutorScript(mkdtempSync(join(tmpdir(), 'colony-executor-')))
    this.script = join(this.sandbox, 'executor.mjs')
    const [script, ml] = await Promise.all([executorScript, mlFiles()])
    copyFileSync(script, this.script)
    this.ml = ml
    await super.start(host)
  }

  /** Where a bundle's module is written so the sandboxed executor may import it. */
  bundlePath(hash: string): string { return join(this.sandbox, 'bundles', `${hash}.mjs`) }
  bundleUrl(hash: string): string { return pathToFileURL(this.bundlePath(hash)).href }
  hasBundle(hash: string): boolean { return existsSync(this.bundlePath(hash)) }

  protected spawn(cb: SpawnCallbacks): ExecutorHandle {
    const ml = this.ml!
    const native = this.opts.nativeMl && ml.ortNodeDir ? ml : undefined
    const readable = [this.sandbox, ml.dir, ...(native?.ortNodeReadable ?? [])]
    // Arguments: where `colony.ml` finds its runtimes (see executor-main.ts).
    const child = fork(this.script!, [ml.dir, native?.ortNodeDir ?? ''], {
      execArgv: [
        '--experimental-permission', ...readable.map((dir) => `--allow-fs-read=${dir}`),
        // Only with --native-ml: addons run native code, which the permission model does not confine.
        ...(native ? ['--allow-addons'] : []),
        `--max-old-space-size=${this.opts.memoryMb ?? 1024}`, '--enable-source-maps', '--no-warnings',
      ],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Job code gets none of the peer's environment (tokens may live there).
      env: { NODE_ENV: process.env.NODE_ENV ?? 'production', TZ: process.env.TZ ?? 'UTC' },
    })
    this.children.add(child)
    child.on('message', (msgs: ToHost[]) => cb.onMessages(msgs))
    child.on('exit', (code, signal) => { this.children.delete(child); cb.onExit(`executor exited (${signal ?? `code ${code}`})`) })
    child.on('error', (err) => this.say(`executor: ${err.message}`))
    return {
      send: (msgs) => { if (child.connected) child.send(msgs) },
      kill: () => { child.kill('SIGKILL') },
    }
  }

  protected override async closed_(): Promise<void> {
    await Promise.all([...this.children].map((c) => new Promise<void>((r) => {
      if (c.exitCode !== null || c.signalCode !== null) { r(); return }
      c.once('exit', () => r())
    })))
    rmSync(this.sandbox, { recursive: true, force: true })
  }
}
