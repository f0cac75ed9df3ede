/**
 * The grid across machines that are not the coordinator's: HTTPS from the coordinator itself
 * and through Caddy, public URLs in every link, coturn with credentials of each peer's own,
 * Node volunteers and Chromium tabs in two homes behind symmetric NAT (net/topology.ts), and a
 * peer on a newer Node. Real processes, namespaces, certificates and browsers throughout.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import WebSocket from 'ws'
import { connect } from '@colony-grid/client'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame } from '@colony-grid/shared'
import { permissionFlag } from '@colony-grid/worker-web/node'
import { ROOT, freePort, startGrid, startProc, until } from './harness.js'
import { makeCert } from './net/tls.js'
import { joinTab, startNatGrid, type NatGrid } from './net/nat-grid.js'

const run = promisify(execFile)

/** Every http(s) link a coordinator printed. */
const linksIn = (out: string) => [...out.matchAll(/https?:\/\/[^\s)'"]+/g)].map((m) => m[0])

describe('addresses and HTTPS from the coordinator itself', () => {
  it('serves HTTPS and WSS with --tls-cert: a Node peer and the CLI trust it through NODE_EXTRA_CA_CERTS, and every link is https', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-tls-'))
    const cert = await makeCert(dir, { ips: ['127.0.0.1'] })
    const port = await freePort()
    const env = { NODE_EXTRA_CA_CERTS: cert.certFile }
    const coord = startProc(['start', '--memory', '--data', dir, '--port', String(port), '--tls-cert', cert.certFile, '--tls-key', cert.keyFile])
    const procs = [coord]
    try {
      const m = await coord.waitFor(/submit token: (\w+)\s+join token:\s+(\w+)\s+trusted join token:\s+(\w+)[\s\S]*Ctrl-C stops/)
      const url = `https://127.0.0.1:${port}`
      const links = linksIn(coord.output())
      assert.ok(links.length >= 8, coord.output())
      for (const l of links) assert.ok(l.startsWith(url), `printed ${l}, not under ${url}`)
      const worker = startProc(['worker', '--url', url, '--token', m[3], '--trusted', '--executors', '1'], { env })
      procs.push(worker)
      await worker.waitFor(/joined \S+ as p_/)
      // The README's job, submitted and followed (server-sent events) over HTTPS by the CLI.
      const submit = startProc(['submit', join(ROOT, 'client', 'examples', 'hello.ts'), '--url', url, '--token', m[1]], { env })
      procs.push(submit)
      await submit.waitFor(/"sumOfSquares": 385/, 60_000)
      // Without the CA, Node refuses the certificate, and the CLI says what to do.
      const refused = startProc(['status', '--url', url, '--token', m[1]])
      procs.push(refused)
      await refused.waitFor(/cannot reach the coordinator[\s\S]*certificate/i)
    } finally {
      for (const p of procs.reverse()) await p.kill()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('prints the --public-url in every link, and refuses a malformed one with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-url-'))
    const port = await freePort()
    const coord = startProc(['start', '--memory', '--data', dir, '--port', String(port)], { env: { COLONY_PUBLIC_URL: 'https://grid.example.org/' } })
    const bad = startProc(['start', '--memory', '--data', dir, '--port', String(await freePort()), '--public-url', 'grid.example.org'])
    try {
      await coord.waitFor(/Ctrl-C stops/)
      const links = linksIn(coord.output())
      assert.ok(links.length >= 8)
      for (const l of links) assert.ok(l === 'https://grid.example.org' || l.startsWith('https://grid.example.org/'), `printed ${l}`)
      assert.match(coord.output(), /Listening on 127\.0\.0\.1 only: https:\/\/grid\.example\.org must be a proxy on this machine/)
      // The page's view: what it may link to from an insecure origin.
      const info = await (await fetch(`http://127.0.0.1:${port}/api/public`)).json() as { url: string; secure: boolean }
      assert.deepEqual(info, { url: 'https://grid.example.org', secure: true })
      await bad.waitFor(/colony: the public URL must be a full URL such as https:\/\/grid\.example\.org \(got grid\.example\.org\)/)
    } finally {
      await coord.kill(); await bad.kill()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('TURN credentials of each peer\'s own', () => {
  it('welcomes every peer with a username that names it and expires, and a password that is coturn\'s HMAC of it; nothing static', async () => {
    const g = await startGrid({ workers: 0, memory: true, env: { COLONY_TURN_SECRET: 'sesame', COLONY_TURN_URLS: 'turn:turn.example.org:3478?transport=udp', COLONY_TURN_TTL_S: '600' } })
    try {
      const welcome = async () => {
        const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
        await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
        ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, role: 'worker', kind: 'node', capabilities: [], resources: { cpu: 1 } }]))
        const msgs = await new Promise<Record<string, unknown>[]>((r) => ws.once('message', (d: Buffer) => r(decodeFrame(new Uint8Array(d)) as Record<string, unknown>[])))
        ws.close()
        return msgs.find((m) => m.t === 'welcome') as { peerId: string; iceServers: { urls: string[]; username: string; credential: string }[] }
      }
      const [a, b] = [await welcome(), await welcome()]
      const { createHmac } = await import('node:crypto')
      for (const w of [a, b]) {
        assert.equal(w.iceServers.length, 1)
        const s = w.iceServers[0]
        assert.deepEqual(s.urls, ['turn:turn.example.org:3478?transport=udp'])
        const [expiry, name] = s.username.split(':')
        assert.equal(name, w.peerId)
        assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 600)) < 30, `expires in about 600 s: ${s.username}`)
        assert.equal(s.credential, createHmac('sha1', 'sesame').update(s.username).digest('base64'))
      }
      assert.notEqual(a.iceServers[0].credential, b.iceServers[0].credential)
    } finally {
      await g.stop()
    }
  })

  it('hands connected peers fresh credentials before theirs expire', async () => {
    const g = await startGrid({ workers: 0, memory: true, env: { COLONY_TURN_SECRET: 'sesame', COLONY_TURN_URLS: 'turn:turn.example.org:3478', COLONY_TURN_TTL_S: '10' } })
    const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
    try {
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      const seen: { t: string; iceServers?: { username: string }[] }[] = []
      ws.on('message', (d: Buffer) => { seen.push(...decodeFrame(new Uint8Array(d)) as typeof seen) })
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, role: 'worker', kind: 'node', capabilities: [], resources: { cpu: 1 }, p2p: true }]))
      const expiry = (m: { iceServers?: { username: string }[] }) => Number(m.iceServers![0].username.split(':')[0])
      const first = await until(async () => seen.find((m) => m.t === 'welcome'), 5000, 'the welcome')
      // Half the credentials' life later, a fresh set that outlives the first.
      const fresh = await until(async () => seen.find((m) => m.t === 'ice' && expiry(m) > expiry(first)), 9000, 'fresh credentials')
      assert.ok(expiry(fresh) - Date.now() / 1000 > 5)
    } finally {
      ws.close()
      await g.stop()
    }
  })

  it('refuses a TURN configuration with half its parts, or credentials that would not last', async () => {
    const p = startProc(['start', '--memory', '--port', String(await freePort())], { env: { COLONY_TURN_SECRET: 'sesame' } })
    const q = startProc(['start', '--memory', '--port', String(await freePort())], { env: { COLONY_TURN_SECRET: 'sesame', COLONY_TURN_URLS: 'turn:t.example.org', COLONY_TURN_TTL_S: '0' } })
    try {
      await p.waitFor(/COLONY_TURN_SECRET needs COLONY_TURN_URLS too/)
      await q.waitFor(/colony: the TURN credentials' lifetime \(COLONY_TURN_TTL_S\) must be between 10 s and 7 days \(got 0\)/)
    } finally { await p.kill(); await q.kill() }
  })
})

describe('a peer on Node after 20', () => {
  it('picks --permission where the binary has it, and a Node 24 peer confines its executors and runs tasks', async () => {
    assert.equal(permissionFlag({ version: '20.20.2' }), '--experimental-permission')
    assert.equal(permissionFlag({ version: '22.12.0' }), '--experimental-permission')
    assert.equal(permissionFlag({ version: '22.13.0' }), '--permission')
    assert.equal(permissionFlag({ version: '24.1.0' }), '--permission')
    assert.equal(permissionFlag({ version: '24.1.0', flags: new Set(['--experimental-permission']) }), '--experimental-permission')
    const node24 = await nodeBinary(24)
    const g = await startGrid({ workers: 0, memory: true })
    try {
      const w = startProc(['worker', '--url', g.url, '--token', g.trustedToken, '--trusted', '--executors', '1', '--capabilities', 'node24'], { node: node24 })
      g.workers.push(w)
      await w.waitFor(/executors: confined: own PID, network/, 30_000)
      await w.waitFor(/joined \S+ as p_/)
      const grid = await connect(g.url, { token: g.submitToken, onLog: false })
      try {
        const where = grid.remote(() => process.version, { capabilities: ['node24'] })
        assert.match(await grid.get(where.remote(), { timeoutMs: 30_000 }), /^v24\./)
        // Its permission model is on: a read outside the job's folder is refused.
        const peek = grid.remote(async () => { const fs = await import('node:fs'); try { fs.readFileSync('/etc/hostname'); return 'read' } catch (e) { return (e as { code?: string }).code } }, { capabilities: ['node24'] })
        assert.equal(await grid.get(peek.remote(), { timeoutMs: 30_000 }), 'ERR_ACCESS_DENIED')
      } finally { await grid.close() }
    } finally {
      await g.stop()
    }
  })
})

/**
 * A Node binary of another major version, from the registry's node-linux-<arch> package
 * (what the `node` package installs), cached so the suite fetches it once; in the temp folder,
 * because executors run it as another user, who cannot enter root's home.
 */
async function nodeBinary(major: number): Promise<string> {
  const dir = join(tmpdir(), 'colony-test-cache', `node${major}-${process.arch}`)
  const bin = join(dir, 'package', 'bin', 'node')
  if (existsSync(bin)) return bin
  mkdirSync(dir, { recursive: true })
  const { stdout } = await run('npm', ['pack', `node-linux-${process.arch}@${major}`, '--pack-destination', dir, '--silent'], { timeout: 300_000 })
  await run('tar', ['xzf', join(dir, stdout.trim().split('\n').at(-1)!), '-C', dir])
  return bin
}

describe('machines behind NAT: a public network with the coordinator, coturn and Caddy; two homes behind symmetric NAT', () => {
  let g: NatGrid
  before(async () => { g = await startNatGrid() })
  after(async () => { await g?.close() })

  /** colony_relayed_bytes_total, read from the operator's machine through Caddy. */
  const relayedBytes = () => g.drive(g.topo.public, async (_grid, url: string) => {
    const text = await (await fetch(`${url}/metrics`)).text()
    return Number(/colony_relayed_bytes_total (\d+)/.exec(text)![1])
  }, g.url)

  it('prints the public HTTPS URL in every link, and peers join through Caddy (WebSocket) with the test CA', async () => {
    const links = linksIn(g.coordinator.output())
    assert.ok(links.length >= 8)
    for (const l of links) assert.ok(l === g.url || l.startsWith(`${g.url}/`), `printed ${l}`)
    assert.equal(g.homePeers.length, 2)
  })

  it('colony submit from a home follows its job through Caddy (event streams), run by the operator\'s trusted machine', async () => {
    const own = g.cli(g.topo.public, ['worker', '--url', g.url, '--token', g.trustedToken, '--trusted', '--executors', '1'])
    await own.waitFor(/joined \S+ as p_/, 30_000)
    const submit = g.cli(g.topo.homes[0], ['submit', join(ROOT, 'client', 'examples', 'hello.ts'), '--url', g.url, '--token', g.submitToken])
    await submit.waitFor(/squared 10 numbers on the grid[\s\S]*"sumOfSquares": 385/, 60_000)
    await own.kill()
  })

  it('a coordinator on every address (--host 0.0.0.0) with no public URL prints its LAN address', async () => {
    const other = g.cli(g.topo.public, ['start', '--memory', '--host', '0.0.0.0', '--port', '9090', '--data', join(tmpdir(), `colony-lan-${process.pid}`)])
    await other.waitFor(/Ctrl-C stops/)
    for (const l of linksIn(other.output())) assert.ok(l.startsWith('http://198.18.0.1:9090'), `printed ${l}`)
    assert.match(other.output(), /Plain HTTP: tabs on other machines get no WebGPU/)
    await other.kill()
  })

  it('takes a peer\'s address from Caddy (X-Forwarded-For), and never from a header a peer writes itself', async () => {
    const seen = await g.drive(g.topo.homes[0], async (grid, o: { plain: string; tls: string; join: string; submit: string }) => {
      const { default: WebSocket } = await import('ws')
      const { PROTOCOL_VERSION, encodeFrame, decodeFrame } = await import('@colony-grid/shared')
      // Two workers that claim to come from 203.0.113.9: straight to the coordinator, and through Caddy.
      const forge = async (base: string, cap: string) => {
        const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
        await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
        ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: o.join, role: 'worker', kind: 'node', capabilities: [cap], resources: { cpu: 1 } }]))
        await new Promise<void>((r) => ws.on('message', (d: Buffer) => { if ((decodeFrame(new Uint8Array(d)) as { t: string }[]).some((m) => m.t === 'welcome')) r() }))
        return ws
      }
      const sockets = [await forge(o.plain, 'forged-direct'), await forge(o.tls, 'forged-caddy')]
      const peers = await (await fetch(`${o.tls}/api/peers`, { headers: { authorization: `Bearer ${o.submit}` } })).json() as { capabilities: string[]; address?: string }[]
      for (const s of sockets) s.close()
      return Object.fromEntries(peers.filter((p) => p.capabilities.some((c) => /^(home\d|forged-\w+)$/.test(c))).map((p) => [p.capabilities.find((c) => /^(home\d|forged-\w+)$/.test(c))!, p.address]))
    }, { plain: g.plainUrl, tls: g.url, join: g.joinToken, submit: g.submitToken })
    // Each home is its NAT router's public address; what a peer wrote itself counts for nothing.
    assert.deepEqual(seen, { home1: '198.18.0.11', home2: '198.18.0.12', 'forged-direct': '198.18.0.11', 'forged-caddy': '198.18.0.11' })
  })

  it('moves objects between the two homes through coturn, with 0 bytes through the coordinator', async () => {
    const before = await relayedBytes()
    const out = await g.drive(g.topo.public, async (grid) => {
      const make = grid.remote((n: number) => new Uint8Array(n).fill(7), { capabilities: ['home1'] })
      const read = grid.remote((b: Uint8Array) => b.length + b[12345], { capabilities: ['home2'] })
      return grid.get(read.remote(make.remote(3 << 20)), { timeoutMs: 60_000 })
    }, null)
    assert.equal(out, (3 << 20) + 7)
    assert.equal(await relayedBytes() - before, 0, 'nothing came through the coordinator')
    assert.ok(g.coturn.allocations() >= 2, `both home peers allocated a relay on coturn (${g.coturn.allocations()})`)
  })

  it('a tab that opens the printed HTTPS join link is a secure context, offers webgpu, and runs tasks', async () => {
    const link = /Join a tab:\s+(\S+)/.exec(g.coordinator.output())![1]
    const b = await g.browser(g.topo.homes[0])
    const { page, response } = await joinTab(b, link)
    // The coordinator's security headers come through Caddy unchanged.
    const headers = response.headers()
    assert.equal(headers['cross-origin-opener-policy'], 'same-origin')
    assert.equal(headers['cross-origin-embedder-policy'], 'require-corp')
    assert.match(headers['content-security-policy'] ?? '', /connect-src 'self' blob: data: ws:\/\/198\.18\.0\.1:8443 wss:\/\/198\.18\.0\.1:8443/)
    assert.equal(await page.evaluate(() => isSecureContext), true)
    assert.equal(await page.isVisible('#insecure'), false)
    assert.match(await page.textContent('#s-caps') ?? '', /\bwebgpu\b/)
    const out = await g.drive(g.topo.public, async (grid) => {
      const f = grid.remote(() => ({ secure: isSecureContext, subtle: typeof crypto.subtle, isolated: crossOriginIsolated }), { capabilities: ['webgpu'] })
      return grid.get(f.remote(), { timeoutMs: 60_000 })
    }, null)
    assert.deepEqual(out, { secure: true, subtle: 'object', isolated: true })
  })

  it('the web IDE (over HTTPS and over plain HTTP) and the scoring demo work from a machine in a home', async () => {
    const b = await g.browser(g.topo.homes[1])
    for (const base of [g.url, g.plainUrl]) {
      const page = await b.newPage()
      await page.goto(`${base}/ide#token=${g.submitToken}`)
      await page.waitForSelector('#examples li')
      for (const [file, result] of [['hello.ts', /"task 9 says hi"/], ['dag.ts', /^1496$/]] as const) {
        await page.click(`li[data-file="${file}"]`)
        await page.click('#run')
        await page.waitForFunction(() => document.querySelector('.out.result, .out.error'), null, { timeout: 60_000 })
        assert.deepEqual(await page.locator('.out.error').allTextContents(), [], `${base}: ${file}`)
        assert.match((await page.locator('.out.result').allTextContents()).join(''), result)
      }
      await page.close()
    }
    const demo = await b.newPage()
    await demo.goto(`${g.url}/demo#token=${g.submitToken}&join=${g.joinToken}`)
    await demo.click('#run')
    await demo.waitForFunction(() => /^Done: 10,000 digits/.test(document.getElementById('status')?.textContent ?? ''), null, { timeout: 120_000 })
  })

  it('a tab on plain HTTP from another machine says what it lacks, links to HTTPS, and still moves objects over 64 KiB both ways', async () => {
    const b = await g.browser(g.topo.homes[1])
    const page = await b.newPage()
    await page.goto(`${g.plainUrl}/join#token=${g.joinToken}&caps=plain`)
    assert.equal(await page.evaluate(() => isSecureContext), false)
    await page.waitForSelector('#secure-link', { state: 'visible' })
    assert.equal(await page.getAttribute('#secure-url', 'href'), `${g.url}/join#token=${g.joinToken}&caps=plain`)
    assert.match(await page.textContent('#insecure') ?? '', /WebGPU and multi-threaded wasm/)
    await page.click('#join')
    await page.waitForFunction(() => document.getElementById('s-conn')?.textContent === 'connected', null, { timeout: 60_000 })
    const before = await relayedBytes()
    const out = await g.drive(g.topo.public, async (grid) => {
      const make = grid.remote((n: number) => new Uint8Array(n).fill(3), { capabilities: ['home1'] })
      const onTab = grid.remote((b: Uint8Array) => { const out = new Uint8Array(b.length * 2); out.set(b); out.set(b, b.length); return out }, { capabilities: ['plain'] })
      const back = grid.remote((b: Uint8Array) => b.length + b[b.length - 1], { capabilities: ['home1'] })
      // A 1 MiB argument into the tab, and its 2 MiB result out of it: both checked by hash on arrival.
      return grid.get(back.remote(onTab.remote(make.remote(1 << 20))), { timeoutMs: 60_000 })
    }, null)
    assert.equal(out, (2 << 20) + 3)
    assert.equal(await relayedBytes() - before, 0, 'peer to peer, through coturn')
  })
})
