/**
 * Tab figures, run inside a private network namespace (run-browser-bench.sh): 16 MiB made by
 * a task in one tab and read by a task in another (pull plan, grant, WebRTC, checks), and the same bytes
 * over a bare RTCDataChannel between the same two pages. Prints a JSON array of figures.
 */
import { writeFileSync } from 'node:fs'
import { chromium, type Page } from '@playwright/test'
import { connect } from '@colony-grid/client'
import { startGrid } from '../harness.js'

const BYTES = 16 * 1024 * 1024

async function joinTab(page: Page, url: string, token: string, caps: string): Promise<void> {
  await page.goto(`${url}/join#token=${token}&caps=${caps}`)
  await page.click('#join')
  await page.waitForFunction(() => document.getElementById('s-conn')?.textContent === 'connected', null, { timeout: 60_000 })
}

/** MiB/s over a bare data channel from page `a` to page `b`, signalling relayed by this process. */
async function rawTabToTab(a: Page, b: Page, bytes: number): Promise<number> {
  for (const [self, other] of [[a, b], [b, a]] as const) {
    await self.exposeBinding('toOther', (_src, msg: string) => other.evaluate((m) => (window as unknown as { fromOther(m: string): void }).fromOther(m), msg))
  }
  const setup = (initiator: boolean) => {
    const w = window as unknown as Record<string, unknown>
    const pc = new RTCPeerConnection({ iceServers: [] })
    const send = w.toOther as (m: string) => Promise<void>
    pc.onicecandidate = (e) => { if (e.candidate) void send(JSON.stringify({ c: e.candidate })) }
    w.fromOther = async (raw: string) => {
      const m = JSON.parse(raw)
      if (m.c) await pc.addIceCandidate(m.c)
      else {
        await pc.setRemoteDescription(m.d)
        if (m.d.type === 'offer') { await pc.setLocalDescription(await pc.createAnswer()); void send(JSON.stringify({ d: pc.localDescription })) }
      }
    }
    w.channel = new Promise<RTCDataChannel>((resolve) => {
      if (initiator) {
        const ch = pc.createDataChannel('raw')
        ch.binaryType = 'arraybuffer'
        ch.onopen = () => resolve(ch)
        void pc.createOffer().then(async (o) => { await pc.setLocalDescription(o); void send(JSON.stringify({ d: pc.localDescription })) })
      } else {
        pc.ondatachannel = (e) => { e.channel.binaryType = 'arraybuffer'; resolve(e.channel) }
      }
    })
  }
  await b.evaluate(setup, false)
  await a.evaluate(setup, true)
  const received = b.evaluate(async (total) => {
    const ch = await (window as unknown as { channel: Promise<RTCDataChannel> }).channel
    return new Promise<number>((resolve) => {
      let got = 0, start = 0
      ch.onmessage = (e) => { if (!start) start = performance.now(); got += (e.data as ArrayBuffer).byteLength; if (got >= total) resolve(performance.now() - start) }
    })
  }, bytes)
  await a.evaluate(async (total) => {
    const ch = await (window as unknown as { channel: Promise<RTCDataChannel> }).channel
    ch.bufferedAmountLowThreshold = 1 << 20
    const chunk = new Uint8Array(64 * 1024)
    for (let sent = 0; sent < total; sent += chunk.byteLength) {
      if (ch.bufferedAmount > 4 << 20) await new Promise<void>((r) => { ch.onbufferedamountlow = () => r() })
      ch.send(chunk)
    }
  }, bytes)
  return bytes / (1 << 20) / ((await received) / 1000)
}

async function main(): Promise<void> {
  const out = process.argv[process.argv.indexOf('--json') + 1]
  process.env.COLONY_RTC_BIND_ADDRESS = ''
  const g = await startGrid({ workers: 0, memory: true })
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  try {
    const [a, b] = [await browser.newPage(), await browser.newPage()]
    await joinTab(a, g.url, g.joinToken, 'a')
    await joinTab(b, g.url, g.joinToken, 'b')
    const grid = await connect(g.url, { token: g.submitToken, onLog: false })
    const make = grid.remote(function make(n: number) { return new Uint8Array(n).fill(1) }, { capabilities: ['a'] })
    const len = grid.remote(function len(x: Uint8Array) { return x.length }, { capabilities: ['b'] })
    await grid.get(len.remote(make.remote(256 * 1024))) // warm: the channel between the tabs is open
    const made = make.remote(BYTES)
    await grid.wait([made])
    // Into a task on the second tab (a tab may read only objects of the jobs it works on).
    const start = performance.now()
    if ((await grid.get(len.remote(made))) !== BYTES) throw new Error('wrong length')
    const colony = BYTES / (1 << 20) / ((performance.now() - start) / 1000)
    const raw = await rawTabToTab(a, b, BYTES)
    await grid.close()
    writeFileSync(out, JSON.stringify([
      { name: 'raw_datachannel_tab_mb_per_s', value: raw, unit: 'MiB/s' },
      { name: 'object_p2p_tab_mb_per_s', value: colony, unit: 'MiB/s' },
    ]))
  } finally {
    await browser.close()
    await g.stop()
  }
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? e); process.exit(1) })
