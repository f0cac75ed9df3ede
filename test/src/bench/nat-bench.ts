/**
 * Figures across machines (net/nat-grid.ts: two homes behind symmetric NAT, coturn and the
 * coordinator on a public network): 64 MiB between the two homes' Node peers, which can only
 * meet through TURN, against a bare data channel between the same two machines through the same
 * coturn; and how long a tab on another machine takes from the printed HTTPS link to its first task.
 */
import { createHmac } from 'node:crypto'
import { startNatGrid, type NatGrid } from '../net/nat-grid.js'
import { rawDataChannelMiBps, spawnWithIpc } from './raw-datachannel.js'

export interface NatFigures { objectTurn: number; rawTurn: number; tabJoinHttps: number }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function natFigures(bytes: number): Promise<NatFigures> {
  const g = await startNatGrid()
  try {
    const username = `${Math.floor(Date.now() / 1000) + 3600}:bench`
    const raw = () => rawDataChannelMiBps(bytes, {
      iceServers: [{ urls: [g.turn.url], username, credential: createHmac('sha1', g.turn.secret).update(username).digest('base64') }],
      bindAddress: null,
      spawn: (side, args) => spawnWithIpc(['ip', 'netns', 'exec', g.topo.homes[side === 'send' ? 0 : 1].ns])(side, args),
    })
    // Interleaved, the median of three each: on a small machine coturn, the two ends and everything
    // else share the cores, and one run of either can be a fifth off.
    const rawRuns: number[] = [], objectRuns: number[] = []
    for (let i = 0; i < 3; i++) {
      rawRuns.push(await raw())
      objectRuns.push(await objectBetweenHomes(g, bytes))
    }
    const tabJoinHttps = await tabJoinSeconds(g)
    return { objectTurn: median(objectRuns), rawTurn: median(rawRuns), tabJoinHttps }
  } finally {
    await g.close()
  }
}

/**
 * MiB/s for an object made by a task on home 1's peer and fetched into the object store of a
 * driver in home 2 (a Node peer behind the other NAT), as object_p2p_node_mb_per_s is on loopback:
 * pull plan, grant, transfer through coturn, size and hash checks. The link is opened first, as the
 * baseline's is.
 */
async function objectBetweenHomes(g: NatGrid, bytes: number): Promise<number> {
  return g.drive(g.topo.homes[1], async (grid, n: number) => {
    const make = grid.remote(function make(size: number) { return new Uint8Array(size).fill(1) }, { capabilities: ['home1'] })
    await grid.get(make.remote(128 * 1024))
    const made = make.remote(n)
    await grid.wait([made])
    const t0 = performance.now()
    const got = (await grid.get(made)).byteLength
    if (got !== n) throw new Error(`read ${got} bytes, expected ${n}`)
    return n / (1 << 20) / ((performance.now() - t0) / 1000)
  }, bytes, 300_000)
}

/**
 * Seconds from opening the printed HTTPS join link in Chromium in home 1 (as a volunteer would,
 * pressing Join once the page is there) to the tab's first finished task, which a driver had queued.
 */
async function tabJoinSeconds(g: NatGrid): Promise<number> {
  const link = /Join a tab:\s+(\S+)/.exec(g.coordinator.output())![1]
  const browser = await g.browser(g.topo.homes[0])
  let queued!: () => void
  const isQueued = new Promise<void>((r) => { queued = r })
  const done = g.drive(g.topo.public, async (grid) => {
    const hello = grid.remote(() => 'hello from a tab', { capabilities: ['browser'] })
    const ref = hello.remote()
    console.log('QUEUED')
    return grid.get(ref, { timeoutMs: 60_000 })
  }, null, 90_000, (out) => { if (out.includes('QUEUED')) queued() })
  await isQueued
  const page = await browser.newPage()
  const t0 = performance.now()
  await page.goto(link)
  await page.click('#join')
  await page.waitForFunction(() => Number(document.getElementById('s-done')?.textContent) >= 1, null, { timeout: 60_000 })
  const seconds = (performance.now() - t0) / 1000
  if (await done !== 'hello from a tab') throw new Error('the tab did not run the task')
  return seconds
}
