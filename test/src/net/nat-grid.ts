/**
 * A grid across separate machines, for tests and benchmarks (topology.ts): the coordinator,
 * coturn (time-limited credentials from a shared secret) and Caddy (HTTPS, the repo's own
 * coordinator/deploy/colony.caddy) on the public network; in each home, behind symmetric NAT,
 * a Node volunteer and room for Chromium tabs. The coordinator is reached as people would:
 * `https://198.18.0.1:8443` through Caddy, or plain `http://198.18.0.1:8080` (an insecure origin).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { chromium, type Browser, type Page, type Response } from '@playwright/test'
import { ROOT, startProc, type Proc } from '../harness.js'
import { buildTopology, type Machine, type Topology } from './topology.js'
import { makeCert, type TestCert } from './tls.js'
import { startCoturn, type Coturn } from './coturn.js'

export interface NatGrid {
  topo: Topology
  cert: TestCert
  coturn: Coturn
  /** coturn's shared secret and URL, for credentials of a baseline's own. */
  turn: { secret: string; url: string }
  /** The public URL (HTTPS through Caddy), as the coordinator prints it. */
  url: string
  /** The same coordinator over plain HTTP from another machine: not a secure context for a tab. */
  plainUrl: string
  submitToken: string
  joinToken: string
  trustedToken: string
  coordinator: Proc
  /** One Node volunteer per home, with the capability `home<N>`. */
  homePeers: Proc[]
  /** Environment for a Node process that talks to the coordinator (it trusts the test certificate). */
  env: Record<string, string>
  /** A Node process on `m`: the CLI with `args`. */
  cli(m: Machine, args: string[]): Proc
  /**
   * Runs `fn(grid, arg)` in a driver process on `m` (its source ships, as a remote function's
   * does: it captures nothing) and returns what it returns, as JSON.
   */
  drive<A, R>(m: Machine, fn: (grid: import('@colony-grid/client').Grid, arg: A) => Promise<R>, arg: A, timeoutMs?: number, onOutput?: (text: string) => void): Promise<R>
  /** Chromium on `m` (Playwright drives it over a pipe; its network is that machine's). */
  browser(m: Machine): Promise<Browser>
  close(): Promise<void>
}

const PORT_TLS = 8443, PORT_PLAIN = 8080, PORT_TURN = 3478

export async function startNatGrid(opts: { homePeers?: boolean; workerArgs?: string[] } = {}): Promise<NatGrid> {
  const dir = mkdtempSync(join(tmpdir(), 'colony-net-'))
  const cleanups: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })]
  const close = async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) }
  try {
    const topo = await buildTopology({ homes: 2, symmetric: true })
    cleanups.push(() => topo.close())
    const pub = topo.public
    const cert = await makeCert(dir, { ips: [pub.address] })
    const secret = 'turn-secret-' + Math.random().toString(36).slice(2)
    // The repo's sample configuration (its relay restrictions and quotas), as an operator would start from it.
    const coturn = await startCoturn({ ip: pub.address, port: PORT_TURN, auth: { secret }, on: { topo, machine: pub }, config: join(ROOT, 'coordinator', 'deploy', 'turnserver.conf') })
    cleanups.push(() => coturn.stop())

    const url = `https://${pub.address}:${PORT_TLS}`
    const coordinator = startProc(['start', '--memory', '--data', dir, '--host', '0.0.0.0', '--port', String(PORT_PLAIN), '--public-url', url, '--trust-proxy'], {
      ns: pub.ns, env: { COLONY_TURN_SECRET: secret, COLONY_TURN_URLS: `turn:${pub.address}:${PORT_TURN}?transport=udp` },
    })
    cleanups.push(() => coordinator.kill())
    const m = await coordinator.waitFor(/submit token: (\w+)\s+join token:\s+(\w+)\s+trusted join token:\s+(\w+)/)

    // Caddy terminates TLS with the test certificate and proxies with the repo's own directives.
    const caddyfile = join(dir, 'Caddyfile')
    writeFileSync(caddyfile, `{
\tadmin off
\tauto_https disable_redirects
\tstorage file_system ${join(dir, 'caddy')}
}
${url} {
\ttls ${cert.certFile} ${cert.keyFile}
\timport ${join(ROOT, 'coordinator', 'deploy', 'colony.caddy')}
}
`)
    const caddy = topo.spawn(pub, 'caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
      env: { ...process.env, COLONY_UPSTREAM: `127.0.0.1:${PORT_PLAIN}`, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    cleanups.push(() => stopChild(caddy))
    await waitForCaddy(caddy)

    // Not the harness's loopback-only WebRTC: these machines have real (test) networks, and TURN takes a moment.
    const env = { NODE_EXTRA_CA_CERTS: cert.certFile, COLONY_RTC_BIND_ADDRESS: '', COLONY_RTC_CONNECT_TIMEOUT_MS: '8000' }
    const g: NatGrid = {
      topo, cert, coturn, turn: { secret, url: `turn:${pub.address}:${PORT_TURN}?transport=udp` }, url, plainUrl: `http://${pub.address}:${PORT_PLAIN}`,
      submitToken: m[1], joinToken: m[2], trustedToken: m[3], coordinator, homePeers: [], env,
      cli: (machine, args) => {
        const p = startProc(args, { ns: machine.ns, env })
        cleanups.push(() => p.kill())
        return p
      },
      async drive(machine, fn, arg, timeoutMs = 120_000, onOutput) {
        const code = `import { connect } from '@colony-grid/client'
const grid = await connect(${JSON.stringify(url)}, { token: ${JSON.stringify(g.submitToken)} })
try { const out = await (${fn.toString()})(grid, ${JSON.stringify(arg)}); process.stdout.write('\\nRESULT ' + JSON.stringify(out ?? null) + '\\n') }
finally { await grid.close() }`
        const child = topo.spawn(machine, process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        child.stdout!.on('data', (d: Buffer) => { out += d.toString(); onOutput?.(out) })
        child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
        const code_ = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
        clearTimeout(timer)
        const line = /\nRESULT (.*)\n/.exec(out)
        if (code_ !== 0 || !line) throw new Error(`the driver on ${machine.ns} ${code_ === null ? `was stopped after ${timeoutMs} ms` : `exited (${code_})`}:\n${out.slice(-3000)}`)
        return JSON.parse(line[1]) as never
      },
      async browser(machine) {
        // Playwright starts Chromium through this script, which puts it on that machine's network.
        const wrapper = join(dir, `chromium-${machine.ns}.sh`)
        writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${machine.ns} /usr/bin/chromium "$@"\n`, { mode: 0o755 })
        const b = await chromium.launch({
          executablePath: wrapper, headless: true,
          args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
            `--ignore-certificate-errors-spki-list=${cert.spki}`, '--enable-unsafe-webgpu'],
        })
        cleanups.push(() => b.close())
        return b
      },
      close,
    }
    if (opts.homePeers !== false) {
      for (const [i, home] of topo.homes.entries()) {
        const p = g.cli(home, ['worker', '--url', url, '--token', g.joinToken, '--executors', '1', '--capabilities', `home${i + 1}`, ...(opts.workerArgs ?? [])])
        await p.waitFor(/joined \S+ as (p_\w+)/, 30_000)
        g.homePeers.push(p)
      }
    }
    return g
  } catch (e) {
    await close()
    throw e
  }
}

async function waitForCaddy(caddy: ChildProcess): Promise<void> {
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`caddy did not start:\n${out.slice(-2000)}`)), 15_000)
    const on = (d: Buffer) => { out += d.toString(); if (/serving initial configuration/.test(out)) { clearTimeout(timer); resolve() } }
    caddy.stdout!.on('data', on)
    caddy.stderr!.on('data', on)
    caddy.once('exit', (c) => { clearTimeout(timer); reject(new Error(`caddy exited (${c}); is it installed (apt-get install -y caddy)?\n${out.slice(-2000)}`)) })
  })
}

function stopChild(c: ChildProcess): Promise<void> {
  return new Promise((r) => { if (c.exitCode !== null || c.signalCode !== null) { r(); return } c.once('exit', () => r()); c.kill('SIGTERM') })
}

/** Opens a join link in a new page, presses Join and waits until the tab is a connected worker. */
export async function joinTab(b: Browser, link: string): Promise<{ page: Page; peerId: string; response: Response }> {
  const page = await b.newPage()
  const response = await page.goto(link)
  if (!response) throw new Error(`no response for ${link}`)
  await page.click('#join')
  await page.waitForFunction(() => document.getElementById('s-conn')?.textContent === 'connected', null, { timeout: 60_000 })
  return { page, peerId: (await page.textContent('#s-peer'))!, response }
}
