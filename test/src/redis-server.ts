/**
 * Debian's redis-server for tests (`apt-get install -y redis-server`; .ci/run installs it): a process
 * of our own on a free loopback port, in a temp dir, never the system service. `restart()` starts it
 * again on the same port and dir, so with `aof` it reloads what it had.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, spawnProc, type Proc } from './harness.js'

export interface RedisServer {
  url: string
  port: number
  dir: string
  output(): string
  /** SIGTERM: a clean shutdown (the AOF is flushed). */
  stop(): Promise<void>
  /** SIGKILL: a crash. */
  kill9(): Promise<void>
  /** SIGSTOP / SIGCONT: a server that hangs, with its connections open. */
  pause(): void
  resume(): void
  /** Starts it again on the same port and dir; one still running is stopped first (SIGTERM). */
  restart(): Promise<void>
  /** Kills it and removes its dir (else the dir goes when this process exits). */
  dispose(): Promise<void>
}

const live = new Set<Proc>()
const dirs = new Set<string>()
// A test process that ends without disposing (a failed assertion, a crash) takes its servers with it.
process.on('exit', () => {
  for (const p of live) p.child.kill('SIGKILL')
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** `appendOnly`: `appendonly yes` with `appendfsync always`, so what Redis answered survives kill9(). */
export async function startRedisServer(o: { appendOnly?: boolean } = {}): Promise<RedisServer> {
  const bin = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((p) => existsSync(p))
  if (!bin) throw new Error('this needs redis-server: apt-get install -y redis-server (.ci/run installs it)')
  const dir = mkdtempSync(join(tmpdir(), 'colony-redis-'))
  dirs.add(dir)
  const port = await freePort()
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--logfile', '',
    '--appendonly', o.appendOnly ? 'yes' : 'no', '--appendfsync', 'always',
  ]
  let proc!: Proc
  let log = ''
  const start = async () => {
    proc = spawnProc(bin, args, { cwd: dir })
    live.add(proc)
    void proc.exited.then(() => { live.delete(proc); log += proc.output() })
    await proc.waitFor(/Ready to accept connections/, 15_000)
  }
  const running = () => proc.child.exitCode === null && proc.child.signalCode === null
  const end = async (signal: NodeJS.Signals) => {
    if (!running()) return
    proc.child.kill(signal)
    proc.child.kill('SIGCONT') // a paused server handles SIGTERM only once it runs again
    await proc.waitExit(15_000)
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    output: () => log + (running() ? proc.output() : ''),
    stop: () => end('SIGTERM'),
    kill9: () => end('SIGKILL'),
    pause: () => { proc.child.kill('SIGSTOP') },
    resume: () => { proc.child.kill('SIGCONT') },
    async restart() {
      await end('SIGTERM')
      await start()
    },
    async dispose() {
      await end('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
      dirs.delete(dir)
    },
  }
}
