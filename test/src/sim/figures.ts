/**
 * The simulator's figures, in one run (what `npm run sim` prints and `npm run bench -- --only sim`
 * records): a join storm of many peers, the coordinator's CPU and memory with them idle and busy,
 * no-op tasks/s with them against a few peers, peers declared dead while the CPU is saturated, and
 * the time until the coordinator sees them all gone after they leave.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type Grid } from '@colony-grid/client'
import type { PeerKind } from '@colony-grid/shared'
import { startProc, type Proc } from '../harness.js'
import { startSimulatedPeers, type SimulatedPeers } from './index.js'
import { listedPeers } from './peers-api.js'
import { cpuMeter, rssMb } from './proc-stats.js'
import { saturateCpu } from './saturate.js'

/** A coordinator to simulate peers against. */
export interface Target { url: string; joinToken: string; submitToken: string }

export interface SimRunOptions {
  peers: number
  /** No-op tasks in each round of tasks/s (the same count with few peers and with all). */
  tasks: number
  /** Rounds of tasks/s, few and many in turns; the best of each is kept. Default 3. */
  rounds?: number
  /** The few peers tasks/s is compared against; default 10. */
  fewPeers?: number
  processes?: number
  taskMs?: number
  rampMs?: number
  /** How long the idle CPU is measured (s); default 10. */
  idleSeconds?: number
  /** How long the CPU is saturated while counting false deaths (s); 0 skips it; default 30. */
  saturateSeconds?: number
  /** How long the coordinator is frozen (SIGSTOP, as a starved or paused process is) while counting false deaths (s); default 0: not done. */
  freezeSeconds?: number
  /** An existing coordinator (its CPU and memory are then not measured); by default one is started for each phase, with a memory store. */
  target?: Target
  log?: (line: string) => void
}

export interface SimFigures {
  peers: number
  /** From the first connect to every peer welcomed (admitted: schedulable), s. */
  joinSeconds: number
  fewPeers: number
  tasksPerSecondFew: number
  tasksPerSecond: number
  /** Only with a coordinator of its own (not `target`). */
  idleCpuPercent?: number
  rssMbIdle?: number
  busyCpuPercent?: number
  rssMbBusy?: number
  /** Peers the coordinator dropped while they were alive, during the saturation and a heartbeat timeout after it. */
  falseDeaths?: number
  /** Peers dropped while alive after the coordinator was frozen (SIGSTOP) for `freezeSeconds`; only with a coordinator of its own. */
  falseDeathsFrozen?: number
  /** From the peers' leaving until the coordinator lists none of them, s. */
  leaveSeconds: number
}

/** A coordinator of its own, as `colony start --memory` runs one, that admits `peers` on one join token. */
async function ownCoordinator(peers: number): Promise<{ proc: Proc; url: string; joinToken: string; submitToken: string; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'colony-sim-'))
  const proc = startProc(['start', '--port', '0', '--memory', '--data', dataDir], { env: { COLONY_MAX_PEERS_PER_TOKEN: String(Math.max(1000, peers + 10)) } })
  const m = await proc.waitFor(/Colony coordinator on (http:\/\/\S+)[\s\S]*?submit token: (\w+)\s+join token:\s+(\w+)/)
  const port = new URL(m[1]).port
  return {
    proc, url: `http://127.0.0.1:${port}`, submitToken: m[2], joinToken: m[3],
    async stop() { await proc.kill('SIGTERM'); rmSync(dataDir, { recursive: true, force: true }) },
  }
}

/** Tasks/s for `n` no-op tasks aimed at simulated peers (those with `capability`), each result checked. */
export async function noOpTasksPerSecond(grid: Grid, n: number, capability = 'sim'): Promise<number> {
  const echo = grid.remote((x: number) => x, { capabilities: [capability] })
  const t0 = performance.now()
  const values = await grid.get(Array.from({ length: n }, (_, i) => echo.remote(i)))
  const rate = n / ((performance.now() - t0) / 1000)
  for (let i = 0; i < n; i++) if (values[i] !== i) throw new Error(`task ${i} returned ${String(values[i])}`)
  return rate
}

/** Waits until the coordinator lists `present` of `ids` (all, or none); returns the seconds it took. */
async function untilListed(url: string, token: string, ids: readonly string[], present: boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const listed = await listedPeers(url, token)
    const n = ids.filter((id) => listed.has(id)).length
    if (present ? n === ids.length : n === 0) return (performance.now() - t0) / 1000
    if (performance.now() - t0 > timeoutMs) throw new Error(`after ${timeoutMs} ms the coordinator lists ${n} of ${ids.length} simulated peers; expected ${present ? 'all' : 'none'}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Runs `body` against the given coordinator, or against a fresh one of its own (then with its pid,
 * for its CPU and memory), with a driver connected; both go when it ends.
 */
async function withCoordinator<T>(given: Target | undefined, peers: number, body: (t: Target, grid: Grid, pid?: number) => Promise<T>): Promise<T> {
  const own = given ? undefined : await ownCoordinator(peers)
  const target = given ?? own!
  try {
    const grid = await connect(target.url, { token: target.submitToken, onLog: false, log: () => {} })
    try { return await body(target, grid, own?.proc.child.pid) } finally { await grid.close() }
  } finally { await own?.stop() }
}

/** CPU meters on the coordinator (when its pid is known), this process (the driver) and the simulated peers' processes, read out in words. */
function processMeters(coordinator: number | undefined, sim: SimulatedPeers): { stop(): { text: string; coordinatorPercent?: number; seconds: number } } {
  const pids: { name: string; pid?: number }[] = [{ name: 'coordinator', pid: coordinator }, { name: 'driver', pid: process.pid }, ...sim.pids.map((pid) => ({ name: 'simulated peers', pid }))]
  const running = pids.flatMap(({ name, pid }) => (pid ? [{ name, meter: cpuMeter(pid) }] : []))
  return {
    stop() {
      const each = running.map(({ name, meter }) => ({ name, ...meter.stop() }))
      const total = each.reduce((n, e) => n + e.percent, 0)
      const text = `CPU: ${each.map((e) => `${e.name} ${e.percent.toFixed(0)}%`).join(', ')} of a core (${total.toFixed(0)}% in all)`
      return { text, coordinatorPercent: coordinator ? each[0].percent : undefined, seconds: each[0].seconds }
    },
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The two sets of peers whose tasks/s are compared, each reached by its own capability. */
interface Side { grid: Grid; capability: string; sim: SimulatedPeers; coordinator?: number }

/**
 * Tasks/s with few peers and with many, measured in turns (few, many, few, many, ...) after a warm-up
 * round of each, the best round of each kept: whatever else this machine runs weighs on both alike.
 */
async function compareTasksPerSecond(few: Side, many: Side, n: number, rounds: number, log: (line: string) => void): Promise<{ few: number; many: number; busyCpuPercent?: number }> {
  // A whole round each to warm up: the code paths keep getting faster over the first rounds.
  for (const side of [few, many]) await noOpTasksPerSecond(side.grid, n, side.capability)
  const best = { few: 0, many: 0 }
  /** The coordinator's CPU seconds over all rounds: per task, it does not depend on what else the machine runs. */
  const cpuSeconds = { few: 0, many: 0 }
  let busy = 0
  for (let r = 0; r < rounds; r++) {
    for (const [name, side] of [['few', few], ['many', many]] as const) {
      const meters = processMeters(side.coordinator, side.sim)
      const rate = await noOpTasksPerSecond(side.grid, n, side.capability)
      const cpu = meters.stop()
      if (name === 'many') busy = Math.max(busy, cpu.coordinatorPercent ?? 0)
      cpuSeconds[name] += ((cpu.coordinatorPercent ?? 0) / 100) * cpu.seconds
      best[name] = Math.max(best[name], rate)
      log(`  round ${r + 1}, ${side.sim.peerIds.length} peers: ${Math.round(rate)} tasks/s; ${cpu.text}`)
    }
  }
  if (many.coordinator && few.coordinator) {
    const us = (s: number) => ((s / (n * rounds)) * 1e6).toFixed(0)
    log(`  the coordinator's CPU per task: ${us(cpuSeconds.few)} µs with ${few.sim.peerIds.length} peers, ${us(cpuSeconds.many)} µs with ${many.sim.peerIds.length}`)
  }
  return { ...best, busyCpuPercent: many.coordinator ? busy : undefined }
}

/**
 * The few peers on a coordinator of their own and the many on another (unless `target`: then both on
 * it, told apart by capability), both fresh, so both tasks/s figures start from the same state: the
 * join storm of the many, their idle CPU and memory, tasks/s of both in turns, false deaths under a
 * saturated CPU, and the many leaving.
 */
export async function runSimFigures(o: SimRunOptions): Promise<SimFigures> {
  const log = o.log ?? ((line: string) => console.error(line))
  const fewPeers = o.fewPeers ?? 10
  const simOptsFor = (t: Target, peers: number, capability: string) => ({
    url: t.url, joinToken: t.joinToken, peers, processes: o.processes, taskMs: o.taskMs ?? 0, kinds: ['node', 'browser'] as PeerKind[], capabilities: ['sim', capability],
  })

  return withCoordinator(o.target, fewPeers, async (fewTarget, fewGrid, fewPid) => {
    const few = await startSimulatedPeers(simOptsFor(fewTarget, fewPeers, 'sim-few'))
    try {
      await few.joined
      return await withCoordinator(o.target, o.peers + (o.target ? fewPeers : 0), async (t, grid, pid) => {
        let sim: SimulatedPeers | undefined = await startSimulatedPeers({ ...simOptsFor(t, o.peers, 'sim-many'), rampMs: o.rampMs, joinTimeoutMs: 120_000 })
        try {
          await sim.joined
          const joinSeconds = (sim.allWelcomedAt - sim.firstConnectAt) / 1000
          await untilListed(t.url, t.submitToken, sim.peerIds, true, 30_000)
          log(`  ${o.peers} peers joined in ${joinSeconds.toFixed(2)} s (from ${sim.pids.length} process${sim.pids.length === 1 ? '' : 'es'})`)
          const figures: SimFigures = { peers: o.peers, joinSeconds, fewPeers, tasksPerSecondFew: 0, tasksPerSecond: 0, leaveSeconds: 0 }

          if (pid) {
            // Idle: a moment for the storm's garbage, then the CPU over a few heartbeat rounds.
            await sleep(2000)
            const meter = cpuMeter(pid)
            await sleep((o.idleSeconds ?? 10) * 1000)
            figures.idleCpuPercent = meter.stop().percent
            figures.rssMbIdle = rssMb(pid)
            log(`  idle with ${o.peers} peers: ${figures.idleCpuPercent.toFixed(1)}% of a core, ${figures.rssMbIdle.toFixed(0)} MiB resident`)
          }

          const rates = await compareTasksPerSecond(
            { grid: fewGrid, capability: 'sim-few', sim: few, coordinator: fewPid },
            { grid, capability: 'sim-many', sim, coordinator: pid }, o.tasks, o.rounds ?? 3, log)
          figures.tasksPerSecondFew = rates.few
          figures.tasksPerSecond = rates.many
          if (pid) { figures.busyCpuPercent = rates.busyCpuPercent; figures.rssMbBusy = rssMb(pid) }
          log(`  best: ${fewPeers} peers ${Math.round(rates.few)} tasks/s, ${o.peers} peers ${Math.round(rates.many)} tasks/s${pid ? `; coordinator ${figures.rssMbBusy!.toFixed(0)} MiB after` : ''}`)

          if ((o.saturateSeconds ?? 30) > 0) figures.falseDeaths = await falseDeaths(sim, t, grid, o.saturateSeconds ?? 30, log)
          if (pid && (o.freezeSeconds ?? 0) > 0) figures.falseDeathsFrozen = await falseDeathsFrozen(sim, pid, o.freezeSeconds!, log)

          const ids = [...sim.peerIds]
          const t0 = performance.now()
          await sim.stop()
          sim = undefined
          await untilListed(t.url, t.submitToken, ids, false, 30_000)
          figures.leaveSeconds = (performance.now() - t0) / 1000
          log(`  all ${o.peers} left; the coordinator listed none of them ${figures.leaveSeconds.toFixed(2)} s after they began to leave`)
          return figures
        } finally { await sim?.stop() }
      })
    } finally { await few.stop() }
  })
}

/**
 * Peers dropped while alive: the CPU saturated for `seconds` (busy loops, and no-op tasks running all
 * along, as on a grid under load), then a heartbeat timeout more, since a peer whose pings were late
 * is declared dead up to that long after.
 */
async function falseDeaths(sim: SimulatedPeers, t: Target, grid: Grid, seconds: number, log: (line: string) => void): Promise<number> {
  const before = sim.deaths.length
  const load = saturateCpu()
  log(`  saturating the CPU for ${seconds} s with ${sim.peerIds.length} peers connected, and no-op tasks running all along`)
  let tasks = 0
  try {
    const end = performance.now() + seconds * 1000
    while (performance.now() < end) { await noOpTasksPerSecond(grid, 2000, 'sim-many'); tasks += 2000 }
  } finally { await load.stop() }
  await sleep(16_000)
  const deaths = sim.deaths.slice(before)
  const listed = await listedPeers(t.url, t.submitToken)
  log(`  ${tasks} tasks ran meanwhile; false deaths: ${deaths.length} (the coordinator lists ${sim.peerIds.filter((id) => listed.has(id)).length} of ${sim.peerIds.length})` +
    `${deaths.length ? `; e.g. ${deaths.slice(0, 3).map((d) => `${d.peerId} ${d.code} ${d.reason}`).join(', ')}` : ''}`)
  return deaths.length
}

/**
 * Peers dropped while alive after the coordinator's process was stopped for `seconds` (SIGSTOP, past
 * the heartbeat timeout: as a process starved of CPU or a paused VM is) and resumed, then a heartbeat
 * timeout more. The peers go on pinging meanwhile; their pings wait in the socket buffers.
 */
async function falseDeathsFrozen(sim: SimulatedPeers, pid: number, seconds: number, log: (line: string) => void): Promise<number> {
  const before = sim.deaths.length
  log(`  freezing the coordinator for ${seconds} s with ${sim.peerIds.length} peers connected`)
  process.kill(pid, 'SIGSTOP')
  try { await sleep(seconds * 1000) } finally { process.kill(pid, 'SIGCONT') }
  await sleep(16_000)
  const deaths = sim.deaths.length - before
  log(`  false deaths after the freeze: ${deaths}`)
  return deaths
}
