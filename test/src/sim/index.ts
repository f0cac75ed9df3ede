/**
 * The peer simulator's programmatic API, for tests, benches and the `npm run sim` CLI:
 *
 *   const sim = await startSimulatedPeers({ url, joinToken, peers: 1000, processes?: 4, taskMs?: 0, kinds?: ['node', 'browser'] })
 *   await sim.joined        // every peer welcomed (rejects if one is refused, or past joinTimeoutMs)
 *   sim.peerIds             // their ids, as the coordinator named them (complete once joined)
 *   await sim.stop()        // every peer leaves (bye, clean close); resolves when all sockets closed
 *
 * Each simulated peer is a plain object on one real WebSocket speaking the real protocol
 * (sim-peer.ts): hello with the join token, pings at the welcome's pace, and a real `done` with
 * inline results for each task, after `taskMs`: every task is a no-op returning its first argument.
 * Peers run in `processes` child processes (fleet-process.ts), or in this one with `processes: 0`.
 * One join token admits at most the coordinator's maxPeersPerToken (1,000 by default) peers at once.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { PeerKind } from '@colony-grid/shared'
import { Fleet, type FleetOptions, type FleetReport } from './fleet.js'
import type { FleetCommand, FleetProcessReport } from './fleet-process.js'
import type { SimPeerEnd, SimPeerSpec } from './sim-peer.js'

export interface SimulatedPeersOptions {
  /** The coordinator's http(s) URL. */
  url: string
  joinToken: string
  peers: number
  /** Child processes to spread the peers over; 0 runs them in this process. Default: one per 250 peers, at most 4. */
  processes?: number
  /** How long each task takes to answer (ms); default 0. */
  taskMs?: number
  /** Peer kinds, given round-robin; default ['node']. */
  kinds?: PeerKind[]
  /** Cpu slots each peer advertises, given round-robin; default [1, 2]. */
  cpus?: number[]
  /** Capabilities every peer advertises; default ['sim'] (so a job can aim at simulated peers only). */
  capabilities?: string[]
  /** Peers say they can open WebRTC data channels, as real Node peers and most tabs do; default true. */
  p2p?: boolean
  /** Spread the connects over this long (ms); default 0: all at once, a join storm. */
  rampMs?: number
  /** `joined` rejects if not every peer is welcomed by then; default 60 s. */
  joinTimeoutMs?: number
}

/** A simulated peer's socket that the coordinator (or the network) closed: a death, unless it was silenced on purpose. */
export type SimDeath = SimPeerEnd & { peerId: string }

export interface SimulatedPeers {
  /** Every peer was welcomed. */
  joined: Promise<void>
  /** The welcomed peers' ids, in the order they were welcomed. */
  peerIds: string[]
  /** When the first peer began to connect and when the last was welcomed (ms since the epoch; 0 until then). */
  firstConnectAt: number
  allWelcomedAt: number
  /** Tasks answered so far, over every peer (each process reports its count every 100 ms). */
  readonly tasksDone: number
  /** Sockets closed by anything but `stop()`: the coordinator dropping a peer (heartbeat timeout, say). */
  readonly deaths: readonly SimDeath[]
  /** The child processes (for their CPU and memory); empty with `processes: 0`. */
  pids: number[]
  /** Stops `count` peers' heartbeats (their sockets stay open); returns their ids. */
  silence(count: number): Promise<string[]>
  stop(): Promise<void>
}

/** The interface index.ts needs of one fleet, in a child process or in this one. */
interface FleetHandle {
  pid?: number
  silence(count: number): Promise<string[]>
  stop(): Promise<void>
}

export async function startSimulatedPeers(o: SimulatedPeersOptions): Promise<SimulatedPeers> {
  const kinds = o.kinds?.length ? o.kinds : ['node' as const]
  const cpus = o.cpus?.length ? o.cpus : [1, 2]
  const capabilities = o.capabilities ?? ['sim']
  const processes = Math.min(o.peers, o.processes ?? Math.min(4, Math.max(1, Math.ceil(o.peers / 250))))
  const specs: (SimPeerSpec & { index: number })[] = Array.from({ length: o.peers }, (_, i) => ({
    index: i, kind: kinds[i % kinds.length], cpu: cpus[i % cpus.length], capabilities, p2p: o.p2p ?? true,
  }))

  let tasksDone = 0
  const deaths: SimDeath[] = []
  let settleJoined!: (err?: Error) => void
  const joined = new Promise<void>((resolve, reject) => { settleJoined = (err) => (err ? reject(err) : resolve()) })
  joined.catch(() => { /* a caller that never awaits it is not an unhandled rejection */ })
  const sim: SimulatedPeers = {
    joined, peerIds: [], firstConnectAt: 0, allWelcomedAt: 0, pids: [],
    get tasksDone() { return tasksDone },
    get deaths() { return deaths },
    silence: async (count) => {
      const ids: string[] = []
      for (const f of fleets) { if (ids.length >= count) break; ids.push(...await f.silence(count - ids.length)) }
      return ids
    },
    stop: async () => { clearTimeout(joinTimer); await Promise.all(fleets.map((f) => f.stop())) },
  }
  const joinTimer = setTimeout(() => settleJoined(new Error(
    `only ${sim.peerIds.length} of ${o.peers} simulated peers were welcomed by ${o.url} within ${o.joinTimeoutMs ?? 60_000} ms`)), o.joinTimeoutMs ?? 60_000)
  joinTimer.unref()

  const onReport = (r: FleetReport) => {
    switch (r.ev) {
      case 'connecting': if (!sim.firstConnectAt || r.at < sim.firstConnectAt) sim.firstConnectAt = r.at; return
      case 'welcomed':
        sim.peerIds.push(...r.ids)
        if (sim.peerIds.length === o.peers) { sim.allWelcomedAt = r.at; clearTimeout(joinTimer); settleJoined() }
        return
      case 'refused': settleJoined(new Error(`a simulated peer did not join: ${r.reason}`)); return
      case 'ended':
        for (const end of r.ends) if (!end.byUs) deaths.push(end)
        return
      case 'tasks': tasksDone += r.done; return
    }
  }

  if (o.peers <= 0) { clearTimeout(joinTimer); settleJoined() }
  const fleets: FleetHandle[] = []
  for (let i = 0; i < Math.max(1, processes) && o.peers > 0; i++) {
    const fleetOpts: FleetOptions = {
      url: o.url, token: o.joinToken, totalPeers: o.peers, rampMs: o.rampMs ?? 0, taskMs: o.taskMs ?? 0,
      peers: specs.filter((s) => s.index % Math.max(1, processes) === i),
    }
    fleets.push(processes === 0 ? inProcessFleet(fleetOpts, onReport) : await childFleet(fleetOpts, onReport))
  }
  sim.pids = fleets.flatMap((f) => (f.pid ? [f.pid] : []))
  return sim
}

function inProcessFleet(opts: FleetOptions, onReport: (r: FleetReport) => void): FleetHandle {
  const fleet = new Fleet(opts, onReport)
  fleet.start()
  return { silence: async (count) => fleet.silence(count), stop: () => fleet.stop() }
}

/** A fleet in a child process of its own, started once the child is up. */
async function childFleet(opts: FleetOptions, onReport: (r: FleetReport) => void): Promise<FleetHandle> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./fleet-process.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const waiting = new Map<number, (ids: string[]) => void>()
  let req = 0
  let onStopped: (() => void) | undefined
  child.on('message', (r: FleetProcessReport) => {
    if (r.ev === 'silenced') { waiting.get(r.req)?.(r.ids); waiting.delete(r.req) }
    else if (r.ev === 'stopped') onStopped?.()
    else onReport(r)
  })
  await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject) })
  const command = (c: FleetCommand) => { if (child.connected) child.send(c) }
  command({ cmd: 'start', opts })
  return {
    pid: child.pid,
    silence: (count) => new Promise((resolve) => {
      if (!child.connected) return resolve([])
      waiting.set(++req, resolve)
      command({ cmd: 'silence', count, req })
    }),
    stop: async () => {
      if (!child.connected) return exited
      const stopped = new Promise<void>((resolve) => { onStopped = resolve })
      command({ cmd: 'stop' })
      // A fleet that cannot finish leaving in time is ended: its sockets close with it.
      const late = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await Promise.race([stopped.then(() => exited), exited])
      clearTimeout(late)
    },
  }
}
