/** Debian's coturn for tests and benchmarks: with coturn's shared secret (use-auth-secret), or one fixed user. */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { Machine, Topology } from './topology.js'

export interface Coturn {
  port: number
  output(): string
  /** Allocations coturn granted so far. */
  allocations(): number
  stop(): Promise<void>
}

export async function startCoturn(o: {
  ip: string; port: number
  auth: { secret: string } | { user: string; password: string }
  /** Run it on this machine of a test network (else in this namespace). */
  on?: { topo: Topology; machine: Machine }
  /** A turnserver.conf to start from (the flags here override it). */
  config?: string
}): Promise<Coturn> {
  const bin = ['/usr/bin/turnserver', '/usr/sbin/turnserver'].find((p) => existsSync(p))
  if (!bin) throw new Error('this needs coturn: apt-get install -y coturn (.ci/run installs it)')
  const args = [
    ...(o.config ? ['-c', o.config] : ['-n']), `--listening-ip=${o.ip}`, `--relay-ip=${o.ip}`, `--listening-port=${o.port}`, '--min-port=49160', '--max-port=49400',
    ...('secret' in o.auth ? ['--use-auth-secret', `--static-auth-secret=${o.auth.secret}`] : ['--lt-cred-mech', `--user=${o.auth.user}:${o.auth.password}`]),
    '--realm=colony', '--no-tls', '--no-dtls', '--no-cli', '--log-file=stdout', '--verbose', '--no-software-attribute',
    ...(o.ip.startsWith('127.') ? ['--allow-loopback-peers'] : []),
  ]
  const child: ChildProcess = o.on ? o.on.topo.spawn(o.on.machine, bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  const deadline = Date.now() + 10_000
  while (!/listener opened on|Total (UDP|General) servers/i.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`coturn did not start:\n${out.slice(-2000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port: o.port,
    output: () => out,
    allocations: () => out.match(/ALLOCATE processed, success/g)?.length ?? 0,
    stop: () => new Promise<void>((r) => { if (child.exitCode !== null) { r(); return } child.once('exit', () => r()); child.kill('SIGTERM') }),
  }
}
