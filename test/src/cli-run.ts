/**
 * The `colony` binary as a child process with stdout and stderr kept apart (the harness's Proc joins
 * them), for tests of what goes where and what the process exits with.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { CLI, ROOT, type Exit } from './harness.js'

export interface CliRun {
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves when `re` appears on `stream` (stderr unless said), or rejects at the deadline with both streams. */
  waitFor(re: RegExp, opts?: { stream?: 'stdout' | 'stderr'; timeoutMs?: number }): Promise<RegExpMatchArray>
  /** How it ended, with everything it printed; rejects at the deadline. */
  done(timeoutMs?: number): Promise<Exit & { stdout: string; stderr: string }>
}

/** `file argv` (the CLI unless said) with `env` added to this process's environment. */
export function runCli(args: string[], env: Record<string, string> = {}, file: [string, string[]] = [process.execPath, [CLI]]): CliRun {
  const child = spawn(file[0], [...file[1], ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = { stdout: '', stderr: '' }
  const listeners = new Set<() => void>()
  child.stdout!.on('data', (d: Buffer) => { out.stdout += d.toString(); for (const l of listeners) l() })
  child.stderr!.on('data', (d: Buffer) => { out.stderr += d.toString(); for (const l of listeners) l() })
  const exited = new Promise<Exit>((r) => child.once('close', (code, signal) => r({ code, signal })))
  const both = () => `--- stdout ---\n${out.stdout.slice(-3000)}\n--- stderr ---\n${out.stderr.slice(-3000)}`
  return {
    child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    waitFor(re, { stream = 'stderr', timeoutMs = 30_000 } = {}) {
      return new Promise((resolve, reject) => {
        const check = () => { const m = out[stream].match(re); if (m) { finish(); resolve(m) } }
        const timer = setTimeout(() => { finish(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} on ${stream}:\n${both()}`)) }, timeoutMs)
        const gone = () => setImmediate(() => { if (!out[stream].match(re)) { finish(); reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before ${re} on ${stream}:\n${both()}`)) } })
        const finish = () => { clearTimeout(timer); listeners.delete(check); child.off('close', gone) }
        listeners.add(check)
        child.once('close', gone)
        check()
      })
    },
    async done(timeoutMs = 60_000) {
      let timer: ReturnType<typeof setTimeout> | undefined
      const late = new Promise<never>((_, reject) => { timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`still running after ${timeoutMs} ms:\n${both()}`)) }, timeoutMs) })
      const exit = await Promise.race([exited, late]).finally(() => clearTimeout(timer))
      return { ...exit, ...out }
    },
  }
}
