/**
 * `npm run bench [-- --json FILE] [-- --only NAME]`: starts a real coordinator and two
 * Node peers (separate processes, SQLite store) and prints each figure beside its
 * target and the baseline measured in the same run.
 */
import { writeFileSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { createNodeWebSocket } from '@hono/node-ws'
import WebSocket from 'ws'
import { connect, type Grid } from '@colony/client'
import { startGrid, startProc, freePort, type GridProcs } from '../harness.js'

interface Figure { name: string; value: number; unit: string; target?: string; note?: string }

const { values: cli } = parseArgs({ options: { json: { type: 'string' }, only: { type: 'string' } } })
const figures: Figure[] = []
const want = (name: string) => !cli.only || name.includes(cli.only)
const record = (f: Figure) => { figures.push(f); console.error(`  ${f.name}: ${fmt(f.value)} ${f.unit}`) }
const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2))

/** A raw WebSocket echo on the same stack (hono + node-ws + ws), 64-byte messages, 256 in flight. */
async function wsEchoBaseline(seconds = 2): Promise<number> {
  const app = new Hono()
  const { injectWebSocket, upgradeWebSocket } = createNodeWebSocket({ app })
  app.get('/echo', upgradeWebSocket(() => ({ onMessage(evt, ws) { ws.send(evt.data as ArrayBuffer) } })))
  const port = await freePort()
  const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' })
  injectWebSocket(server)
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
  await new Promise((r) => ws.once('open', r))
  const msg = Buffer.alloc(64, 1)
  let got = 0
  const end = Date.now() + seconds * 1000
  await new Promise<void>((resolve) => {
    ws.on('message', () => {
      got++
      if (Date.now() < end) ws.send(msg)
      else if (got % 256 === 0 || Date.now() > end + 1000) resolve()
    })
    for (let i = 0; i < 256; i++) ws.send(msg)
  })
  ws.close()
  server.close()
  return got / seconds
}

async function tasksAsync(grid: Grid, n: number): Promise<number> {
  const noop = grid.remote(() => null)
  await grid.get(noop.remote()) // warm: function defined, executors loaded
  const t0 = performance.now()
  const refs = Array.from({ length: n }, () => noop.remote())
  await grid.get(refs)
  return n / ((performance.now() - t0) / 1000)
}

async function tasksSync(grid: Grid, n: number): Promise<number> {
  const noop = grid.remote(() => null)
  await grid.get(noop.remote())
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await grid.get(noop.remote())
  return n / ((performance.now() - t0) / 1000)
}

async function actorCalls(grid: Grid, n: number): Promise<number> {
  const Counter = grid.remote(class Counter { n = 0; inc() { return ++this.n } })
  const c = Counter.remote()
  await grid.get(c.inc.remote())
  const t0 = performance.now()
  const refs = Array.from({ length: n }, () => c.inc.remote())
  const last = await grid.get(refs[refs.length - 1])
  if (last !== n + 1) throw new Error(`actor counted ${last}, expected ${n + 1}`)
  return n / ((performance.now() - t0) / 1000)
}

/** The coordinator's resident memory with 100k tasks queued and no peer to run them. */
async function queuedRss(n: number): Promise<number> {
  const port = await freePort()
  const coord = startProc(['start', '--port', String(port), '--data', `/tmp/colony-bench-rss-${process.pid}`])
  try {
    const m = await coord.waitFor(/submit token: (\w+)/)
    const url = `http://127.0.0.1:${port}`
    const grid = await connect(url, { token: m[1], onLog: false })
    const noop = grid.remote(() => null)
    for (let i = 0; i < n; i++) noop.remote()
    const deadline = Date.now() + 120_000
    for (;;) {
      const h = await (await fetch(`${url}/healthz`)).json() as { queued: number }
      if (h.queued >= n) break
      if (Date.now() > deadline) throw new Error(`only ${h.queued} tasks queued`)
      await new Promise((r) => setTimeout(r, 100))
    }
    const status = readFileSync(`/proc/${coord.child.pid}/status`, 'utf8')
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)![1])
    await grid.close()
    return kb / 1024
  } finally {
    await coord.kill('SIGKILL')
  }
}

async function main(): Promise<void> {
  console.error('starting a coordinator (SQLite) and 2 Node peers, 1 executor each...')
  let g: GridProcs | undefined
  try {
    if (want('ws_echo')) record({ name: 'ws_echo_msgs_per_s', value: await wsEchoBaseline(), unit: 'msg/s', target: 'baseline' })
    g = await startGrid({ workers: 2, executors: 1 })
    const grid = await connect(g.url, { token: g.submitToken, onLog: false })
    if (want('tasks_async')) record({ name: 'tasks_async_per_s', value: await tasksAsync(grid, 20_000), unit: 'tasks/s', target: '>= 10000' })
    if (want('tasks_sync')) record({ name: 'tasks_sync_per_s', value: await tasksSync(grid, 2_000), unit: 'tasks/s', target: '>= 2000' })
    if (want('actor_calls')) record({ name: 'actor_calls_async_per_s', value: await actorCalls(grid, 20_000), unit: 'calls/s', target: '>= 10000' })
    await grid.close()
  } finally {
    await g?.stop()
  }
  if (want('queued_100k')) record({ name: 'queued_100k_tasks_rss_mb', value: await queuedRss(100_000), unit: 'MB', target: '<= 512' })

  const echo = figures.find((f) => f.name === 'ws_echo_msgs_per_s')?.value
  console.log('\n| figure | value | unit | target | vs ws echo |')
  console.log('| --- | ---: | --- | --- | ---: |')
  for (const f of figures) {
    const ratio = echo && f.unit.endsWith('/s') && f.name !== 'ws_echo_msgs_per_s' ? (f.value / echo).toFixed(3) : ''
    console.log(`| ${f.name} | ${fmt(f.value)} | ${f.unit} | ${f.target ?? ''} | ${ratio} |`)
  }
  if (cli.json) {
    writeFileSync(cli.json, JSON.stringify(figures.map(({ name, value, unit }) => ({ name, value, unit })), null, 2) + '\n')
    console.error(`wrote ${cli.json}`)
  }
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? e); process.exit(1) })
