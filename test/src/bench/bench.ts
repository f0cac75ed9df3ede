/**
 * `npm run bench [-- --json FILE] [-- --only NAME]`: starts a real coordinator and two
 * Node peers (separate processes, SQLite store) and prints each figure beside its
 * target and the baseline measured in the same run.
 */
import { writeFileSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { decodeFrame, encodeFrame } from '@colony-grid/shared'
import { connect, type Grid, type ObjectRef } from '@colony-grid/client'
import { rawDataChannelMiBps } from './raw-datachannel.js'
import { natFigures } from './nat-bench.js'
import { scoringFigures } from './scoring.js'
import { trainingFigures } from './training.js'
import { OBJECTIVE_P99_MS, servingFigures } from './serving.js'
import { tuningFigures } from './tuning.js'
import { simFigures } from './sim.js'
import { pagingFigures } from './api-paging.js'
import { spawn, spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startGrid, startProc, freePort, ROOT, type GridProcs } from '../harness.js'
import { startRedisServer } from '../redis-server.js'

interface Figure { name: string; value: number; unit: string; target?: string; baseline?: string }

const { values: cli } = parseArgs({ options: { json: { type: 'string' }, only: { type: 'string' } } })
const figures: Figure[] = []
const want = (name: string) => !cli.only || name.includes(cli.only)
const record = (f: Figure) => { figures.push(f); console.error(`  ${f.name}: ${fmt(f.value)} ${f.unit}`) }
const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : Math.abs(v) < 1 ? v.toFixed(3) : v.toFixed(2))

/** Starts ws-echo-server.js in its own process, as the coordinator runs in its own. */
async function echoServer(): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./ws-echo-server.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (b: Buffer) => { out += b; const m = /port (\d+)/.exec(out); if (m) resolve(Number(m[1])) })
    child.once('exit', (code) => reject(new Error(`the echo server exited (${code})`)))
  })
  return { url: `ws://127.0.0.1:${port}/echo`, stop: () => { child.kill('SIGTERM') } }
}

/**
 * Messages per second through a bare WebSocket echo in another process, sent as Colony's peers send:
 * small msgpack messages (~50 bytes), queued and sent as one frame per event-loop turn (`encodeFrame`),
 * `window` of them in flight. The server answers each one, batched the same way. The clock runs from
 * the first send to the last answer: sending stops at `seconds`, and what is in flight is counted as it
 * drains, over the time it takes. `window` 1 is a synchronous round trip: send one, wait, repeat.
 */
async function wsEcho(url: string, window: number, seconds: number): Promise<number> {
  const ws = new WebSocket(url)
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
  const p = new Uint8Array(32).fill(1)
  let outbox: unknown[] = []
  let queued = false
  let id = 0, inFlight = 0, got = 0, last = 0
  const flush = () => { queued = false; const msgs = outbox; outbox = []; ws.send(encodeFrame(msgs)) }
  const send = () => {
    outbox.push({ t: 'echo', id: id++, p })
    inFlight++
    if (!queued) { queued = true; setImmediate(flush) }
  }
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await new Promise<void>((resolve, reject) => {
    ws.once('close', () => reject(new Error('the echo server closed the connection')))
    ws.on('message', (data: Buffer) => {
      const n = decodeFrame(data).length
      got += n
      inFlight -= n
      last = performance.now()
      if (last < end) for (let i = 0; i < n; i++) send()
      else if (inFlight === 0) resolve()
    })
    for (let i = 0; i < window; i++) send()
  })
  ws.close()
  return got / ((last - t0) / 1000)
}

/** The ceiling: the best of a few windows (after a warm-up), each for `seconds`. */
async function wsEchoCeiling(url: string, seconds = 2): Promise<{ rate: number; window: number }> {
  await wsEcho(url, 1024, 0.5)
  let best = { rate: 0, window: 0 }
  for (const window of [256, 1024, 4096, 16_384]) {
    const rate = await wsEcho(url, window, seconds)
    if (rate > best.rate) best = { rate, window }
  }
  return best
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
  // Every result back to the driver, as tasksAsync gets every task's.
  const counts = await grid.get(refs)
  const rate = n / ((performance.now() - t0) / 1000)
  for (let i = 0; i < n; i++) if (counts[i] !== i + 2) throw new Error(`call ${i} counted ${counts[i]}, expected ${i + 2}`)
  return rate
}

/**
 * MiB/s for a 64 MiB object made by a task on a peer and fetched by another Node peer (this driver) into
 * its object store: pull plan, grant, transfer, size and hash checks, decode. The channel is opened first,
 * as the raw baseline's is. `withTask` also counts handing it to a task's sandboxed executor on a third peer.
 */
async function objectTransfer(grid: Grid, bytes: number, withTask = false): Promise<number> {
  const make = grid.remote(function make(n: number) { return new Uint8Array(n).fill(1) }, { capabilities: ['a'] })
  const read = grid.remote(function read(b: Uint8Array) { return b.length }, { capabilities: ['b'] })
  const warm = make.remote(128 * 1024)
  if (withTask) await grid.get(read.remote(warm)); else await grid.get(warm)
  const made = make.remote(bytes)
  await grid.wait([made])
  const t0 = performance.now()
  const n = withTask ? await grid.get(read.remote(made)) : (await grid.get(made)).byteLength
  if (n !== bytes) throw new Error(`read ${n} bytes, expected ${bytes}`)
  return bytes / (1 << 20) / ((performance.now() - t0) / 1000)
}

/**
 * 1 KiB objects put by a task on peer `a`, then got by a task on peer `b`: objects per second, the
 * clock running from the puts to the last get (both tasks' dispatch included).
 */
async function smallObjects(grid: Grid, n: number): Promise<number> {
  const putAll = grid.remote(function putAll(count: number) {
    const g = (globalThis as unknown as { colony: { grid: Grid } }).colony.grid
    const refs = []
    for (let i = 0; i < count; i++) refs.push(g.put(new Uint8Array(1024).fill(i % 256)))
    return refs
  }, { capabilities: ['a'] })
  const getAll = grid.remote(async function getAll(refs: ObjectRef<Uint8Array>[]) {
    const g = (globalThis as unknown as { colony: { grid: Grid } }).colony.grid
    const vals = await g.get(refs)
    return vals.reduce((s, v) => s + v.length, 0)
  }, { capabilities: ['b'] })
  await grid.get(getAll.remote(putAll.remote(10)))
  const t0 = performance.now()
  const total = await grid.get(getAll.remote(putAll.remote(n)))
  if (total !== n * 1024) throw new Error(`got ${total} bytes`)
  return n / ((performance.now() - t0) / 1000)
}

/** A coordinator and two peers with capabilities `a` and `b`; `relay` makes them use the coordinator's relay. */
async function withPair<T>(relay: boolean, f: (grid: Grid) => Promise<T>): Promise<T> {
  const g = await startGrid({ workers: 0, memory: true })
  try {
    await g.addWorker(1, ['--capabilities', 'a', ...(relay ? ['--relay'] : [])])
    await g.addWorker(1, ['--capabilities', 'b', ...(relay ? ['--relay'] : [])])
    const grid = await connect(g.url, { token: g.submitToken, onLog: false })
    try { return await f(grid) } finally { await grid.close() }
  } finally { await g.stop() }
}

/** A coordinator (on `store`) with 2 Node peers of 1 executor each, and a driver, for `f`. */
async function withGridOf<T>(opts: { store?: string }, f: (grid: Grid) => Promise<T>): Promise<T> {
  const g = await startGrid({ workers: 2, executors: 1, store: opts.store })
  try {
    const grid = await connect(g.url, { token: g.submitToken, onLog: false })
    try { return await f(grid) } finally { await grid.close() }
  } finally { await g.stop() }
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
    if (want('ws_echo') || want('ws_roundtrip')) {
      const echo = await echoServer()
      try {
        const ceiling = await wsEchoCeiling(echo.url)
        record({ name: 'ws_echo_msgs_per_s', value: ceiling.rate, unit: 'msg/s', target: 'baseline' })
        console.error(`    (best window: ${ceiling.window} messages in flight)`)
        await wsEcho(echo.url, 1, 0.5)
        record({ name: 'ws_roundtrip_sync_per_s', value: await wsEcho(echo.url, 1, 2), unit: 'round trips/s', target: 'baseline' })
      } finally { echo.stop() }
    }
    g = await startGrid({ workers: 2, executors: 1 })
    const grid = await connect(g.url, { token: g.submitToken, onLog: false })
    if (want('tasks_async')) record({ name: 'tasks_async_per_s', baseline: 'ws_echo_msgs_per_s', value: await tasksAsync(grid, 20_000), unit: 'tasks/s', target: '>= 10000' })
    if (want('tasks_sync')) record({ name: 'tasks_sync_per_s', baseline: 'ws_roundtrip_sync_per_s', value: await tasksSync(grid, 2_000), unit: 'tasks/s', target: '>= 2000' })
    if (want('actor_calls')) record({ name: 'actor_calls_async_per_s', baseline: 'ws_echo_msgs_per_s', value: await actorCalls(grid, 20_000), unit: 'calls/s', target: '>= 10000' })
    await grid.close()
  } finally {
    await g?.stop()
  }
  if (want('redis_tasks_async')) {
    // The same figure with the control store in Redis (Debian's redis-server, AOF with fsync on
    // every commit, as the README's standby setup has it), against SQLite measured now.
    const sqlite = figures.find((f) => f.name === 'tasks_async_per_s')?.value ?? await withGridOf({}, (grid) => tasksAsync(grid, 20_000))
    const redis = await startRedisServer({ appendOnly: true })
    try {
      const value = await withGridOf({ store: redis.url }, (grid) => tasksAsync(grid, 20_000))
      record({ name: 'redis_tasks_async_per_s', baseline: 'tasks_async_per_s', value, unit: 'tasks/s' })
      record({ name: 'redis_vs_sqlite_tasks_ratio', value: value / sqlite, unit: 'ratio', target: '>= 0.5' })
    } finally { await redis.dispose() }
  }
  if (want('queued_100k')) record({ name: 'queued_100k_tasks_rss_mb', value: await queuedRss(100_000), unit: 'MB', target: '<= 512' })

  const MIB64 = 64 * 1024 * 1024
  if (want('object_p2p') || want('raw_datachannel')) {
    const raw = await rawDataChannelMiBps(MIB64)
    record({ name: 'raw_datachannel_node_mb_per_s', value: raw, unit: 'MiB/s', target: 'baseline' })
    const p2p = await withPair(false, (grid) => objectTransfer(grid, MIB64))
    record({ name: 'object_p2p_node_mb_per_s', baseline: 'raw_datachannel_node_mb_per_s', value: p2p, unit: 'MiB/s' })
    record({ name: 'object_p2p_vs_raw_ratio', value: p2p / raw, unit: 'ratio', target: '>= 0.9' })
    record({ name: 'object_p2p_into_task_mb_per_s', baseline: 'raw_datachannel_node_mb_per_s', value: await withPair(false, (grid) => objectTransfer(grid, MIB64, true)), unit: 'MiB/s' })
  }
  if (want('object_turn') || want('tab_join_https')) {
    // Machines behind NAT: network namespaces, coturn, Caddy and Chromium; needs root.
    const nat = await natFigures(MIB64)
    record({ name: 'raw_datachannel_turn_mb_per_s', value: nat.rawTurn, unit: 'MiB/s', target: 'baseline' })
    record({ name: 'object_turn_mb_per_s', baseline: 'raw_datachannel_turn_mb_per_s', value: nat.objectTurn, unit: 'MiB/s' })
    record({ name: 'object_turn_vs_raw_ratio', value: nat.objectTurn / nat.rawTurn, unit: 'ratio', target: '>= 0.9' })
    record({ name: 'tab_join_https_s', value: nat.tabJoinHttps, unit: 's', target: '<= 5' })
  }
  if (want('object_relay')) record({ name: 'object_relay_mb_per_s', baseline: 'raw_datachannel_node_mb_per_s', value: await withPair(true, (grid) => objectTransfer(grid, MIB64)), unit: 'MiB/s' })
  if (want('tab')) {
    // Chromium tabs need the private network namespace (see test/run-browser-bench.sh).
    const file = join(tmpdir(), `colony-tab-bench-${process.pid}.json`)
    const r = spawnSync('bash', [join(ROOT, 'test', 'run-browser-bench.sh'), '--json', file], { stdio: ['ignore', 'inherit', 'inherit'] })
    if (r.status !== 0) throw new Error('the tab figures failed (they need chromium: apt-get install -y chromium)')
    const tab = JSON.parse(readFileSync(file, 'utf8')) as Figure[]
    const raw = tab.find((f) => f.name === 'raw_datachannel_tab_mb_per_s')!
    record({ ...raw, target: 'baseline' })
    record({ ...tab.find((f) => f.name === 'object_p2p_tab_mb_per_s')!, baseline: raw.name })
  }
  if (want('scoring')) {
    const f = await scoringFigures()
    record({ name: 'scoring_inproc_samples_per_s', value: f.inproc, unit: 'samples/s', target: 'baseline' })
    if (f.native !== undefined) record({ name: 'scoring_native_samples_per_s', value: f.native, unit: 'samples/s', baseline: 'scoring_inproc_samples_per_s' })
    else console.error('  scoring_native_samples_per_s: skipped, onnxruntime-node is not installed (README: "Native onnxruntime")')
    record({ name: 'scoring_1peer_samples_per_s', value: f.onePeer, unit: 'samples/s', baseline: 'scoring_inproc_samples_per_s' })
    record({ name: 'scoring_2peer_samples_per_s', value: f.twoPeers, unit: 'samples/s', baseline: 'scoring_inproc_samples_per_s' })
    record({ name: 'scoring_efficiency', value: f.twoPeers / (2 * f.inproc), unit: 'ratio', target: '>= 0.9' })
  }
  if (want('train')) {
    const f = await trainingFigures()
    record({ name: 'train_inproc_samples_per_s', value: f.inproc, unit: 'samples/s', target: 'baseline' })
    record({ name: 'train_2worker_samples_per_s', value: f.twoWorkers, unit: 'samples/s', baseline: 'train_inproc_samples_per_s' })
    record({ name: 'train_efficiency', value: f.twoWorkers / (2 * f.inproc), unit: 'ratio', target: '>= 0.8' })
    record({ name: 'train_ssp_time_to_95_s', value: f.sspSeconds, unit: 's' })
    record({ name: 'train_bsp_time_to_95_s', value: f.bspSeconds, unit: 's' })
    record({ name: 'train_ssp_vs_bsp_time_ratio', value: f.sspSeconds / f.bspSeconds, unit: 'ratio', target: '<= 0.6' })
    record({ name: 'train_bytes_per_sample', value: f.bytesPerSample, unit: 'bytes' })
  }
  if (want('serve')) {
    const f = await servingFigures()
    record({ name: 'serve_off_req_per_s', value: f.offBest, unit: `req/s (p99 <= ${OBJECTIVE_P99_MS} ms)`, target: 'baseline' })
    record({ name: 'serve_aimd_req_per_s', value: f.aimdBest, unit: `req/s (p99 <= ${OBJECTIVE_P99_MS} ms)`, baseline: 'serve_off_req_per_s' })
    record({ name: 'serve_batching_gain', value: f.aimdBest / f.offBest, unit: 'ratio', target: '>= 4' })
    record({ name: 'serve_cache_hit_p50_ms', value: f.cacheHitP50, unit: 'ms', target: '<= 1' })
    record({ name: 'serve_direct_call_p50_ms', value: f.directP50, unit: 'ms', target: 'baseline' })
    record({ name: 'serve_endpoint_p50_ms', value: f.endpointP50, unit: 'ms', baseline: 'serve_direct_call_p50_ms' })
    record({ name: 'serve_added_latency_p50_ms', value: f.endpointP50 - f.directP50, unit: 'ms', target: '<= 1' })
    record({ name: 'serve_p99_c1_ms', value: f.p99c1, unit: `ms (${f.perClientRate} req/s a client)`, target: 'baseline' })
    record({ name: 'serve_p99_c256_ms', value: f.p99c256, unit: `ms (${f.perClientRate} req/s a client)`, baseline: 'serve_p99_c1_ms' })
    record({ name: 'serve_p99_c256_over_c1', value: f.p99c256 / f.p99c1, unit: 'ratio', target: '<= 5' })
    record({ name: 'serve_exp3_feedbacks_to_recover', value: f.exp3Feedbacks, unit: 'feedbacks', target: '<= 500' })
  }
  if (want('tune')) {
    const f = await tuningFigures()
    record({ name: 'tune_overhead', value: f.overhead, unit: 'ratio (2,000 trials of 20 ms, 2 at once; from tune() to its result)', target: '<= 0.05' })
    record({ name: 'tune_overhead_vs_measured_trial', value: f.overheadVsMeasured, unit: 'ratio (the same, against 2,000 × the trainable\'s own time in one process / 2)' })
    record({ name: 'tune_overhead_steady', value: f.overheadSteady, unit: 'ratio (the same, from the first trial\'s start)' })
    record({ name: 'tune_trials_per_s', value: f.trialsPerSecond, unit: 'trials/s' })
    record({ name: 'tune_asha_epoch_fraction', value: f.ashaEpochFraction, unit: 'ratio (to within 0.5 points of the full search\'s best)', target: '<= 0.2' })
    record({ name: 'tune_asha_total_epoch_fraction', value: f.ashaTotalFraction, unit: 'ratio (the whole ASHA search)' })
    record({ name: 'tune_asha_best_gap_points', value: f.ashaBestGap, unit: 'points (the full search\'s best less ASHA\'s)', target: '<= 0.5' })
    record({ name: 'tune_stop_release_ms', value: f.stopReleaseMax, unit: 'ms (the slowest of the ASHA run\'s stops)', target: '<= 1000' })
    record({ name: 'tune_stop_release_p50_ms', value: f.stopReleaseP50, unit: 'ms' })
  }
  if (want('api_tasks_page')) {
    const f = await pagingFigures()
    record({ name: 'api_tasks_whole_list_ms_100k', value: f.wholeListMs, unit: 'ms (all 100,000 tasks, as 10 pages of 10,000)', target: 'baseline' })
    record({ name: 'api_tasks_page_p95_ms_100k', value: f.pageP95Ms, unit: `ms (a page of 100; p95 first ${fmt(f.byKind.first)}, middle ${fmt(f.byKind.middle)}, last ${fmt(f.byKind.last)}, filtered ${fmt(f.byKind.filtered)})`, baseline: 'api_tasks_whole_list_ms_100k', target: '<= 200' })
  }
  if (want('sim')) {
    const f = await simFigures()
    record({ name: 'sim_join_1000_s', value: f.joinSeconds, unit: 's (first connect to all 1,000 welcomed, from 4 processes)', target: '<= 20' })
    record({ name: 'sim_tasks_per_s_10', value: f.tasksPerSecondFew, unit: 'tasks/s (no-op, 10 simulated peers; best of 3 rounds of 20,000, after one to warm up)', target: 'baseline' })
    record({ name: 'sim_tasks_per_s_1000', value: f.tasksPerSecond, unit: 'tasks/s (no-op, 1,000 simulated peers; best of 3 rounds, in turns with the 10)', baseline: 'sim_tasks_per_s_10' })
    record({ name: 'sim_tasks_per_s_1000_over_10', value: f.tasksPerSecond / f.tasksPerSecondFew, unit: 'ratio', target: '>= 0.8' })
    record({ name: 'sim_idle_cpu_pct_1000', value: f.idleCpuPercent!, unit: '% of one core (coordinator, 1,000 idle peers, over 10 s)', target: '<= 10' })
    record({ name: 'sim_busy_cpu_pct_1000', value: f.busyCpuPercent!, unit: '% of one core (coordinator, its busiest round of 1,000-peer tasks)' })
    record({ name: 'sim_rss_mb_1000', value: f.rssMbIdle!, unit: 'MiB (coordinator resident, 1,000 peers connected, before any task)', target: '<= 300' })
    // What a job's records add on top (about 3 KB a task while its job runs), not the peers: said apart.
    record({ name: 'sim_rss_mb_1000_after_80k_tasks', value: f.rssMbBusy!, unit: 'MiB (the same after the rounds: 80,000 tasks of one running job)' })
    record({ name: 'sim_false_deaths', value: f.falseDeaths!, unit: 'peers (dropped while alive: 30 s of saturated CPU with tasks running, and 16 s after)', target: '0' })
    record({ name: 'sim_false_deaths_frozen', value: f.falseDeathsFrozen!, unit: 'peers (dropped while alive: the coordinator frozen 20 s by SIGSTOP, past the 15 s heartbeat timeout, and 16 s after)', target: '0' })
  }
  if (want('object_roundtrip')) record({ name: 'object_roundtrip_small_per_s', baseline: 'ws_echo_msgs_per_s', value: await withPair(false, (grid) => smallObjects(grid, 10_000)), unit: 'objects/s' })

  console.log('\n| figure | value | unit | target | vs baseline (same run) |')
  console.log('| --- | ---: | --- | --- | --- |')
  for (const f of figures) {
    const base = figures.find((b) => b.name === f.baseline)
    const ratio = base ? `${(f.value / base.value).toFixed(3)} × ${base.name}` : ''
    console.log(`| ${f.name} | ${fmt(f.value)} | ${f.unit} | ${f.target ?? ''} | ${ratio} |`)
  }
  if (cli.json) {
    writeFileSync(cli.json, JSON.stringify(figures.map(({ name, value, unit }) => ({ name, value, unit })), null, 2) + '\n')
    console.error(`wrote ${cli.json}`)
  }
}

main().then(() => process.exit(0), (e: Error) => { console.error(e.stack ?? e); process.exit(1) })
