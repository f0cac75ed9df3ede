/**
 * The chaos scenarios (`npm run chaos`), each on real processes: peers killed and
 * restarted mid-job, the coordinator killed with SIGKILL, a hostile peer, hostile
 * volunteers and job authors, fuzzed frames. Each figure is read from what happened (the
 * coordinator's /metrics and store, the values the driver got, the processes' output),
 * never from what the scenario meant to do; and each scenario takes `faults`
 * (shared/src/faults.ts), so test/src/chaos.test.ts and `npm run chaos` can show each
 * figure going bad when the property it measures is broken on purpose.
 */
import WebSocket from 'ws'
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { connect, ObjectRef, type Grid } from '@colony-grid/client'
import {
  PROTOCOL_VERSION, decodeFrame, encodeFrame, encodeValue, parsePeerMessage, sha256HexSync,
  type FaultName, type Grant, type PullPlanMsg,
} from '@colony-grid/shared'
import type { Peer } from '@colony-grid/worker-web'
import { byzantinePeer } from '../byzantine.js'
import { forgedMain, jobAttacks, orAfter, quarantineWash, volunteerAttacks, type Attempt } from './attacks.js'
import { api, metric, startGrid, type GridProcs, type Proc } from '../harness.js'

/** Faults to inject (COLONY_INJECT_FAULTS) into the coordinator and into the scenario's Node workers. */
export interface Faults { coordinator?: FaultName[]; workers?: FaultName[] }

/** The environment that turns `names` on (and, empty, turns off any this process inherited). */
const faultEnv = (names: FaultName[] = []): Record<string, string> => ({ COLONY_INJECT_FAULTS: names.join(',') })

/** A grid whose coordinator and `workers` Node workers run with `faults`. */
async function faultyGrid(faults: Faults, opts: { workers: number; executors?: number; memory?: boolean; env?: Record<string, string> }): Promise<GridProcs & { addFaultyWorker(args?: string[], env?: Record<string, string>): Promise<Proc> }> {
  const g = await startGrid({ workers: 0, executors: opts.executors ?? 1, memory: opts.memory, env: { ...opts.env, ...faultEnv(faults.coordinator) } })
  const addFaultyWorker = (args: string[] = [], env: Record<string, string> = {}) => g.addWorker(opts.executors ?? 1, args, { env: { ...faultEnv(faults.workers), ...env } })
  try {
    for (let i = 0; i < opts.workers; i++) await addFaultyWorker()
  } catch (e) { await g.stop(); throw e }
  return Object.assign(g, { addFaultyWorker })
}

/** ~2 ms of deterministic work per task: the output depends only on `i`. */
function mix(i: number): number {
  let h = (i + 1) >>> 0
  for (let k = 0; k < 1_500_000; k++) h = Math.imul(h ^ k, 2654435761) >>> 0
  return h
}

async function withDriver<T>(g: GridProcs, f: (grid: Grid & { jobId: string }) => Promise<T>): Promise<T> {
  const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
  try { return await f(grid) } finally { await grid.close() }
}

/** Every ref's value, or how many were lost (rejected). */
async function settle<T = number>(grid: Grid, refs: ObjectRef<T>[], timeoutMs: number): Promise<{ values: (T | undefined)[]; errors: (Error | undefined)[]; lost: number }> {
  const out = await Promise.allSettled(refs.map((r) => grid.get(r, { timeoutMs })))
  return {
    values: out.map((o) => (o.status === 'fulfilled' ? o.value : undefined)),
    errors: out.map((o) => (o.status === 'rejected' ? o.reason as Error : undefined)),
    lost: out.filter((o) => o.status === 'rejected').length,
  }
}

/** The job's tasks by state, as the coordinator has them. */
async function taskStates(g: GridProcs, jobId: string): Promise<{ rows: number; finished: number }> {
  const tasks = (await api<{ state: string }[]>(g, `/api/jobs/${jobId}/tasks`)).body
  return { rows: tasks.length, finished: tasks.filter((t) => t.state === 'finished').length }
}

export interface ChurnFigures {
  /** Tasks whose result the driver never got. */
  lost: number
  /** Results the coordinator applied beyond one per finished task (colony_tasks_finished_total against the tasks that finished). */
  duplicates: number
  /** Byte for byte the output of a clean run (undefined: no clean run was made to compare with). */
  identical?: boolean
  kills: number
  /** Results that came for tasks already decided, and were ignored (colony_duplicate_results_total). */
  ignoredDuplicateResults: number
  /** colony_tasks_finished_total, and the tasks the coordinator has as finished. */
  applied: number
  finished: number
}

/**
 * `n` tasks on 3 peers; one peer is killed (SIGKILL) and a new one started every `everyMs`, until
 * the job ends; and (`compare`, default) a clean run of the same job to compare its output with.
 */
export async function peerChurn(n: number, everyMs: number, opts: { faults?: Faults; compare?: boolean } = {}): Promise<ChurnFigures> {
  const faults = opts.faults ?? {}
  const run = async (churn: boolean) => {
    const g = await faultyGrid(churn ? faults : {}, { workers: 3, memory: true })
    try {
      return await withDriver(g, async (grid) => {
        const work = grid.remote(mix, { maxRetries: 10 })
        const refs = Array.from({ length: n }, (_, i) => work.remote(i))
        let kills = 0, stopped = false
        const killer = churn ? (async () => {
          for (let victim = 0; !stopped; victim++) {
            await new Promise((r) => setTimeout(r, everyMs))
            if (stopped) break
            const i = victim % g.workers.length
            await g.workers[i].kill('SIGKILL')
            g.workers.splice(i, 1)
            g.workerIds.splice(i, 1)
            kills++
            await g.addFaultyWorker()
          }
        })() : Promise.resolve()
        const { values, lost } = await settle(grid, refs, 600_000)
        stopped = true
        await killer
        // Late results (a killed peer's, a duplicate) land in the next moments, if at all: give them time to be counted.
        await new Promise((r) => setTimeout(r, 300))
        const { finished } = await taskStates(g, grid.jobId)
        return { values, lost, kills, finished, applied: await metric(g, 'colony_tasks_finished_total'), ignored: await metric(g, 'colony_duplicate_results_total') }
      })
    } finally { await g.stop() }
  }
  const clean = opts.compare === false ? undefined : await run(false)
  const chaos = await run(true)
  return {
    lost: chaos.lost, kills: chaos.kills, ignoredDuplicateResults: chaos.ignored, applied: chaos.applied, finished: chaos.finished,
    duplicates: Math.max(0, chaos.applied - chaos.finished),
    identical: clean && JSON.stringify(chaos.values) === JSON.stringify(clean.values) && clean.lost === 0,
  }
}

export interface RestartFigures {
  /** Tasks whose result the driver never got. */
  lost: number
  /** Task rows the coordinator has for the job (one per task). */
  recorded: number
  /** Values that are not the task's. */
  wrong: number
  /** Results applied, before and after the restart: tasks its store had finished at the kill, plus colony_tasks_finished_total of the restarted coordinator. */
  applied: number
  /** Of those, the ones finished before the kill. */
  finishedBeforeKill: number
}

/** `n` tasks; the coordinator is killed with SIGKILL a quarter of the way, and restarted on its SQLite file. */
export async function coordinatorRestart(n: number, opts: { faults?: Faults } = {}): Promise<RestartFigures> {
  const g = await faultyGrid(opts.faults ?? {}, { workers: 3 })
  try {
    return await withDriver(g, async (grid) => {
      const work = grid.remote(mix)
      const refs = Array.from({ length: n }, (_, i) => work.remote(i))
      await grid.wait(refs, { numReturns: Math.ceil(n / 4), timeoutMs: 300_000 })
      await g.coordinator.kill('SIGKILL')
      // What the restarted coordinator will find finished: its store, as the kill left it.
      const db = new Database(join(g.dataDir, 'colony.db'), { readonly: true, fileMustExist: true })
      const finishedBeforeKill = (db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE job = ? AND state = 'finished'").get(grid.jobId) as { n: number }).n
      db.close()
      await g.startCoordinator()
      const { values, lost } = await settle(grid, refs, 600_000)
      await new Promise((r) => setTimeout(r, 300))
      const { rows } = await taskStates(g, grid.jobId)
      const appliedAfter = await metric(g, 'colony_tasks_finished_total')
      return { lost, recorded: rows, wrong: values.filter((v, i) => v !== undefined && v !== mix(i)).length, applied: finishedBeforeKill + appliedAfter, finishedBeforeKill }
    })
  } finally { await g.stop() }
}

/** The figure of a restart run: lost, wrong, or recorded or applied other than once per task. */
export const restartFigure = (r: RestartFigures, n: number): number => r.lost + r.wrong + Math.abs(r.recorded - n) + Math.abs(r.applied - n)

/** A result of over 64 KiB (it stays on its peer, and replicas compare it by hash): deterministic in `i`. */
function bigResult(i: number): Uint8Array {
  const out = new Uint8Array(80_000)
  for (let k = 0; k < out.length; k++) out[k] = (i * 31 + k * 7) & 0xff
  return out
}

export interface ByzantineFigures {
  /** Wrong values the driver got, plus the liar's wrong large answers no vote counted against it. */
  wrongAccepted: number
  /** Of those, the large answers (compared by hash only). */
  wrongLargeAgreed: number
  /** Small tasks with no value, or large ones that did not end with the error replicated large results get. */
  lost: number
  /** Times the liar was quarantined (it is released each time, so it keeps lying). */
  quarantines: number
  quarantined: boolean
  /** Tasks (replicas) the liar answered, and of them large. */
  liarAnswered: number
  liarLarge: number
}

/** What a replicated task with results over 64 KiB ends with (README, Untrusted peers): its replicas vote, and then it fails. */
const REPLICAS_MUST_BE_SMALL = /has replicas, so its results must be small enough to keep in the coordinator/

/**
 * 2 honest peers and one that always answers wrong; `n` tasks with `replicas: 2`, and `large`
 * more whose results are over 64 KiB, where the liar answers with wrong bytes of the same size,
 * its hash true to them. Each time it is quarantined an operator releases it, so it keeps voting.
 */
export async function byzantine(n: number, large: number, opts: { faults?: Faults } = {}): Promise<ByzantineFigures> {
  const g = await faultyGrid(opts.faults ?? {}, { workers: 2, memory: true })
  try {
    const wrongBig = encodeValue(new Uint8Array(80_000).fill(0xee))
    if (wrongBig.length !== encodeValue(bigResult(0)).length) throw new Error('the liar\'s large answer must be the size of an honest one')
    const evil = await byzantinePeer(g, -1, undefined, { large: (name) => (name.startsWith('big~') ? wrongBig : undefined) })
    let quarantines = 0, stop = false
    const isQuarantined = async () => !!(await api<{ id: string; quarantined: boolean }[]>(g, '/api/peers')).body.find((p) => p.id === evil.id)?.quarantined
    const operator = (async () => {
      while (!stop) {
        if (await isQuarantined()) { quarantines++; await api(g, `/api/peers/${evil.id}/release`, { method: 'POST' }) }
        await new Promise((r) => setTimeout(r, 50))
      }
    })()
    const out = await withDriver(g, async (grid) => {
      const work = grid.remote(mix, { replicas: 2 })
      const big = grid.remote(function big(i: number) {
        const out = new Uint8Array(80_000)
        for (let k = 0; k < out.length; k++) out[k] = (i * 31 + k * 7) & 0xff
        return out
      }, { replicas: 2 })
      const small = Array.from({ length: n }, (_, i) => work.remote(i))
      const bigs = Array.from({ length: large }, (_, i) => big.remote(i))
      const [s, b] = await Promise.all([settle(grid, small, 300_000), settle(grid, bigs, 300_000)])
      return { s, b }
    })
    stop = true
    await operator
    const quarantinedAtEnd = await isQuarantined()
    evil.close()
    // Every large task the liar answered must have cost it a disagreement (the coordinator says which).
    const disagreed = new Set([...g.coordinator.output().matchAll(new RegExp(`peer ${evil.id} disagreed with the quorum on \\S+ \\((\\S+)\\)`, 'g'))].map((m) => m[1]))
    const liarLargeTasks = new Set(evil.largeIds.map((id) => id.slice(0, id.lastIndexOf('~'))))
    const wrongLargeAgreed = [...liarLargeTasks].filter((id) => !disagreed.has(id)).length
    const wrongSmall = out.s.values.filter((v, i) => v !== undefined && v !== mix(i)).length
    const wrongBigValues = out.b.values.filter((v, i) => v !== undefined && Buffer.compare(Buffer.from(v as Uint8Array), Buffer.from(bigResult(i))) !== 0).length
    const bigOdd = out.b.errors.filter((e) => e !== undefined && !REPLICAS_MUST_BE_SMALL.test(e.message)).length
    return {
      wrongAccepted: wrongSmall + wrongBigValues + wrongLargeAgreed, wrongLargeAgreed, lost: out.s.lost + bigOdd,
      quarantines: quarantines + (quarantinedAtEnd ? 1 : 0), quarantined: quarantines > 0 || quarantinedAtEnd,
      liarAnswered: evil.tasksAnswered, liarLarge: evil.largeIds.length,
    }
  } finally { await g.stop() }
}

/** A small seeded PRNG, so a fuzz run can be repeated. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}

/** Values a field might wrongly hold, of any type: nearly every message with one fails the schema. */
const ODD = [null, -1, 0, 2 ** 53, Number.NaN, '', 'x'.repeat(300), [], {}, true, new Uint8Array(3), { $proto: 1 }, 't.a.b', 'o.a.b.r0', 'p_000000000000']
/** Odd values that keep a field's type: most such messages pass the schema, and reach a handler. */
const ODD_STRINGS = ['', 'x'.repeat(300), 't.a.b', 'o.a.b.r0', 'p_000000000000', 'j_000000000000', '../../etc/passwd', '\u0000', '\u{1F642}'.repeat(40), '__proto__', 'constructor', 't.fz.1~9', 'o.fz.1', 't.fz.1', 'f1', 'node']
const ODD_NUMBERS = [-1, 0, 1, 2 ** 31, 2 ** 32 + 1, 2 ** 53, -(2 ** 53), 0.5, 1e308, -0]
const oddBytes = (rand: () => number): Uint8Array =>
  [new Uint8Array(0), Uint8Array.of(0xc1), Uint8Array.of(0x90), new Uint8Array(70_000), Uint8Array.of(0xd4, 0x43, 0), Uint8Array.of(0x91, 0xd4, 0x44, 0)][Math.floor(rand() * 6)]

/** Every message a peer may send, each valid as it stands. */
function templates(): Record<string, unknown>[] {
  return [
    { t: 'submit', spec: { id: 't.fz.1', name: 'f', fn: 'f1', args: Uint8Array.of(0x90), deps: [], opts: { maxRetries: 1, timeoutMs: 1000, resources: { cpu: 1 }, numReturns: 1 } } },
    { t: 'submit', spec: { id: 't.fz.2', name: 'f', fn: 'f1', args: Uint8Array.of(0x90), deps: ['o.fz.1'], opts: { replicas: 3, quorum: 2, compare: { tolerance: 0.1 }, capabilities: ['node'] } } },
    { t: 'submit', spec: { id: 't.fz.3', name: 'A.m', fn: '', args: Uint8Array.of(0x90), deps: [], actor: 't.fz.1', method: 'm', opts: {} } },
    { t: 'fn', def: { id: 'f1', kind: 'inline', name: 'f', src: '() => 1' } },
    { t: 'fn', def: { id: 'f2', kind: 'bundle', name: 'g', bundle: '0'.repeat(32), export: 'g' } },
    { t: 'put', id: 'o.fz.1', size: 3, inline: Uint8Array.of(1, 2, 3) },
    { t: 'put', id: 'o.fz.2', size: 100_000, hash: 'a'.repeat(64), replicate: 2 },
    { t: 'done', task: 't.fz.1', attempt: 1, results: [{ size: 1, inline: Uint8Array.of(0xc3) }], ms: 1 },
    { t: 'done', task: 't.fz.1', attempt: 1, error: { type: 'Error', message: 'x' } },
    { t: 'done', task: 't.fz.1', attempt: 1, lost: true },
    { t: 'sub', ids: ['o.fz.1'] }, { t: 'pull', req: 1, id: 'o.fz.1', relay: true }, { t: 'cancel', ids: ['t.fz.1'], force: true },
    { t: 'free', ids: ['o.fz.1'] }, { t: 'signal', to: 'p_000000000000', link: 'l', data: {} }, { t: 'blocked', task: 't.fz.1', blocked: true },
    { t: 'log', task: 't.fz.1', lines: ['x'] }, { t: 'held', ids: ['o.fz.1'] }, { t: 'evicted', ids: ['o.fz.1'] },
    { t: 'chunk', req: 1, seq: 0, data: new Uint8Array(4), last: true }, { t: 'serveFail', req: 1, reason: 'x' },
    { t: 'actorLost', actor: 't.fz.1', reason: 'x' }, { t: 'pause', paused: true }, { t: 'ping' }, { t: 'bye' },
  ]
}

/** A message with 1 to 3 fields replaced by values of any type (most fail the schema). */
function mutatedMessage(rand: () => number): unknown {
  const all = templates()
  const m = all[Math.floor(rand() * all.length)]
  const keys = Object.keys(m)
  const flips = 1 + Math.floor(rand() * 3)
  for (let i = 0; i < flips; i++) {
    const k = rand() < 0.1 ? `extra${i}` : keys[Math.floor(rand() * keys.length)]
    if (rand() < 0.2) delete m[k]; else m[k] = ODD[Math.floor(rand() * ODD.length)]
  }
  if (rand() < 0.05) m.t = ODD[Math.floor(rand() * ODD.length)]
  return m
}

/** A message with 1 to 3 values anywhere in it (not its type) replaced by odd values of the same type. */
function retypedMessage(rand: () => number): unknown {
  const all = templates()
  const m = all[Math.floor(rand() * all.length)]
  const spots: [Record<string, unknown> | unknown[], string | number][] = []
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => { spots.push([v, i]); walk(x) })
    else if (v && typeof v === 'object' && !(v instanceof Uint8Array)) for (const k of Object.keys(v)) { if (v !== m || k !== 't') { spots.push([v as Record<string, unknown>, k]); walk((v as Record<string, unknown>)[k]) } }
  }
  walk(m)
  const flips = 1 + Math.floor(rand() * 3)
  for (let i = 0; i < flips && spots.length; i++) {
    const [holder, k] = spots[Math.floor(rand() * spots.length)]
    const at = holder as Record<string | number, unknown>
    const v = at[k]
    if (typeof v === 'string') at[k] = ODD_STRINGS[Math.floor(rand() * ODD_STRINGS.length)]
    else if (typeof v === 'number') at[k] = ODD_NUMBERS[Math.floor(rand() * ODD_NUMBERS.length)]
    else if (typeof v === 'boolean') at[k] = !v
    else if (v instanceof Uint8Array) at[k] = oddBytes(rand)
    else if (Array.isArray(v)) at[k] = rand() < 0.5 ? [] : [...v, ...v, ...v]
    else if (v && typeof v === 'object') at[k] = rand() < 0.5 ? {} : { ...v, [ODD_STRINGS[Math.floor(rand() * ODD_STRINGS.length)]]: ODD[Math.floor(rand() * ODD.length)] }
  }
  return m
}

/** msgpack's extension types: a value of one decodes as the process that reads it has them registered (an actor handle, say). */
const EXT_BYTES = new Set([0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8])

/** Bytes that are not a frame (random, or a frame cut short), so the coordinator must close the connection with 1007. */
function malformedFrame(rand: () => number): Uint8Array {
  for (;;) {
    const raw = rand() < 0.5
      ? Uint8Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))
      : (() => { try { const b = encodeFrame([retypedMessage(rand)]); return b.subarray(0, Math.floor(rand() * b.length)) } catch { return new Uint8Array(0) } })()
    // Without extension bytes, whether it decodes does not depend on the reader.
    if (raw.length === 0 || raw.some((b) => EXT_BYTES.has(b))) continue
    try { decodeFrame(raw) } catch { return raw }
  }
}

/** The coordinator's maxBadMessages: on one connection, the 21st message the schema refuses closes it (code 4400). */
const MAX_BAD = 20

export interface FuzzFigures {
  /** Frames the coordinator was seen to process: a pong came after them, or the close they were sent to cause came. */
  frames: number
  /** Frames written to a socket; those not confirmed went to a connection that ended otherwise than expected. */
  sent: number
  /** Connections that ended otherwise than expected (closed early, or no pong), and the first few closes. */
  surprises: number
  surpriseNotes: string[]
  reconnects: number
  /** Messages the schema refuses (the fuzzer checks each against it) sent and confirmed; and colony_bad_messages_total's rise. */
  badSent: number
  badMessages: number
  /** Confirmed messages that passed the schema, and so reached a handler. */
  validSent: number
  /** HTTP requests answered, answered 5xx, and not answered at all. */
  httpRequests: number
  http5xx: number
  httpNoAnswer: number
  /** Lines in the coordinator's output: a message handler that threw ("error handling …"), a failed HTTP handler ("HTTP … failed"), anything uncaught or unhandled. */
  handlerErrors: number
  httpErrorLines: number
  uncaught: number
  /** The coordinator process ended. */
  exited: boolean
  /** exited + handlerErrors + the larger of http5xx and httpErrorLines + httpNoAnswer + uncaught. */
  crashes: number
  /** Afterwards a job still runs. */
  healthy: boolean
}

/**
 * At least `frames` WebSocket frames the coordinator is seen to process, each one message:
 * protocol messages mutated two ways (fields of any type, which the schema refuses, and odd values
 * of the right type, which reach a handler), on connections that each end with a frame that must
 * close them (a malformed frame, or the message past the bad-message limit); then `http` mutated
 * API requests. Then checks it still serves. The fuzzer checks each message against the schema
 * itself, so it knows when the coordinator must close a connection; frames count once a pong sent
 * after them comes back, or once the close they must cause comes with its code.
 */
export async function fuzz(frames: number, http: number, opts: { seed?: number; faults?: Faults } = {}): Promise<FuzzFigures> {
  const g = await faultyGrid(opts.faults ?? {}, { workers: 1, memory: true })
  const rand = rng(opts.seed ?? 7)
  const f: FuzzFigures = {
    frames: 0, sent: 0, surprises: 0, surpriseNotes: [], reconnects: 0, badSent: 0, badMessages: 0, validSent: 0,
    httpRequests: 0, http5xx: 0, httpNoAnswer: 0, handlerErrors: 0, httpErrorLines: 0, uncaught: 0, exited: false, crashes: 0, healthy: false,
  }
  const exited = () => g.coordinator.child.exitCode !== null || g.coordinator.child.signalCode !== null
  const surprise = (note: string) => { f.surprises++; if (f.surpriseNotes.length < 5) f.surpriseNotes.push(note) }
  try {
    const badBefore = await metric(g, 'colony_bad_messages_total')
    /** One connection, its `quota` frames, and the frame that ends it. */
    const connection = async (quota: number): Promise<void> => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      const opened = await new Promise<boolean>((r) => { ws.once('open', () => r(true)); ws.once('error', () => r(false)) })
      if (!opened) { if (!exited()) surprise('a connection could not be opened'); return }
      let welcome!: () => void, closed: (c: { code: number; reason: string }) => void = () => {}
      const welcomed = new Promise<void>((r) => { welcome = r })
      const closedP = new Promise<{ code: number; reason: string }>((r) => { closed = r })
      ws.on('close', (code, reason) => closed({ code, reason: reason.toString() }))
      // Frames that answer with a pong (our own pings, and fuzzed pings the schema takes), by their count on this connection.
      const pongAt: number[] = []
      let confirmed = 0, sentHere = 0, badHere = 0, lastPing = 0, pongWaiter: (() => void) | undefined
      // Messages the schema takes, and those it refuses, by their count on this connection: they count once confirmed.
      const validAt: number[] = [], badAt: number[] = []
      ws.on('message', (d: Buffer) => {
        let msgs: Record<string, unknown>[]
        try { msgs = decodeFrame(d) as Record<string, unknown>[] } catch { return }
        for (const m of msgs) {
          if (m.t === 'welcome') welcome()
          else if (m.t === 'pong') { confirmed = pongAt.shift() ?? confirmed; pongWaiter?.() }
        }
      })
      const token = rand() < 0.5 ? g.submitToken : g.joinToken
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token, kind: 'node', role: token === g.joinToken ? 'worker' : 'driver', capabilities: [], resources: { cpu: 0 } }]))
      const hello = await orAfter(Promise.race([welcomed.then(() => 'welcome'), closedP.then((c) => `closed ${c.code} ${c.reason}`)]), 10_000, 'no welcome within 10 s')
      if (hello !== 'welcome') { surprise(`hello: ${hello}`); ws.terminate(); return }
      const send = (bytes: Uint8Array, pong: boolean) => { ws.send(bytes); sentHere++; if (pong) pongAt.push(sentHere) }
      /** Pings, and waits until every frame so far is confirmed; false if the connection ended or went quiet instead. */
      const sync = async (): Promise<boolean> => {
        ws.send(encodeFrame([{ t: 'ping' }])); pongAt.push(sentHere); lastPing = sentHere
        const ok = await orAfter(Promise.race([
          new Promise<boolean>((r) => { const check = () => { if (confirmed === sentHere) { pongWaiter = undefined; r(true) } }; pongWaiter = check; check() }),
          closedP.then(() => false),
        ]), 10_000, false)
        pongWaiter = undefined
        return ok
      }
      const account = (ended: string | undefined) => {
        f.frames += confirmed; f.sent += sentHere
        f.validSent += validAt.filter((n) => n <= confirmed).length
        f.badSent += badAt.filter((n) => n <= confirmed).length
        if (ended) { surprise(ended); ws.terminate() }
      }
      let ending: { bytes: Uint8Array; code: number } | undefined
      while (!ending && f.frames + sentHere < frames) {
        if (ws.readyState !== WebSocket.OPEN) { const c = await closedP; account(`closed early, ${c.code} ${c.reason.slice(0, 100)}`); return }
        // Keep the socket's send buffer small, so the coordinator (not this process) sets the pace.
        if (ws.bufferedAmount > 1 << 20) { await new Promise((r) => setTimeout(r, 1)); continue }
        for (let i = 0; i < 100 && f.frames + sentHere < frames; i++) {
          if (rand() < 0.001 || sentHere >= quota) {
            // The connection's last frame: malformed bytes (code 1007), or the message past the bad-message limit (4400).
            if (rand() < 0.5 || badHere < MAX_BAD) {
              ending = { bytes: malformedFrame(rand), code: 1007 }
            } else {
              let bytes: Uint8Array
              do { bytes = encodeFrame([mutatedMessage(rand)]) } while (parsePeerMessage(decodeFrame(bytes)[0]).ok)
              ending = { bytes, code: 4400 }
              badAt.push(sentHere + 1)
            }
            break
          }
          const schemaRefuses = badHere < MAX_BAD && rand() < 0.25
          let bytes: Uint8Array
          try { bytes = encodeFrame([(schemaRefuses ? mutatedMessage : retypedMessage)(rand)]) } catch { continue }
          const parsed = parsePeerMessage(decodeFrame(bytes)[0])
          if (!parsed.ok) {
            if (badHere >= MAX_BAD) continue // it would close the connection before its time: another
            badHere++
            badAt.push(sentHere + 1)
          } else validAt.push(sentHere + 1)
          send(bytes, parsed.ok && parsed.msg.t === 'ping')
        }
        await new Promise((r) => setImmediate(r))
        if (sentHere - lastPing >= 200) { ws.send(encodeFrame([{ t: 'ping' }])); pongAt.push(sentHere); lastPing = sentHere }
      }
      // Everything so far confirmed, then the frame that must end the connection (or, at the run's end, a plain close).
      if (!(await sync())) { account(ws.readyState === WebSocket.OPEN ? 'no pong within 10 s' : 'closed before its last frame'); return }
      if (!ending) { account(undefined); ws.close(); return }
      ws.send(ending.bytes); sentHere++
      const end = await orAfter(closedP, 10_000, undefined)
      if (end?.code === ending.code) confirmed = sentHere
      account(end?.code === ending.code ? undefined : `the last frame should close with ${ending.code}; ${end ? `closed ${end.code} ${end.reason.slice(0, 100)}` : 'still open after 10 s'}`)
    }
    while (f.frames < frames && !exited()) {
      const before = f.frames
      await connection(500 + Math.floor(rand() * 1500))
      if (f.frames < frames && !exited()) f.reconnects++
      if (f.frames === before && f.surprises > 50) break // something is badly wrong: stop, and say so in the figures
    }
    if (!exited()) f.badMessages = (await metric(g, 'colony_bad_messages_total')) - badBefore

    const paths = ['/api/jobs', '/api/bundles', '/api/peers', '/api/jobs/j_x', '/api/jobs/j_x/tasks', '/api/peers/p_x/release', '/api/jobs/../../etc', '/ws', '/join', '/metrics', '/api/tokens', '/api/jobs/j_x/events']
    for (let i = 0; i < http && !exited(); i++) {
      const path = paths[Math.floor(rand() * paths.length)]
      const method = rand() < 0.5 ? 'POST' : rand() < 0.5 ? 'GET' : 'DELETE'
      const body = method === 'POST' ? (rand() < 0.5 ? JSON.stringify({ bundle: rand() < 0.5 ? 42 : 'x'.repeat(Math.floor(rand() * 1000)), args: ODD[Math.floor(rand() * ODD.length)], role: ODD_STRINGS[Math.floor(rand() * ODD_STRINGS.length)] }) : String.fromCharCode(...Array.from({ length: 50 }, () => Math.floor(rand() * 256)))) : undefined
      const token = rand() < 0.7 ? g.submitToken : rand() < 0.5 ? g.joinToken : 'bad'
      const status = await fetch(g.url + path, { method, body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, signal: AbortSignal.timeout(10_000) })
        .then(async (r) => { if (!path.endsWith('/events')) await r.arrayBuffer(); else await r.body?.cancel(); return r.status }, () => undefined)
      if (status === undefined) f.httpNoAnswer++
      else { f.httpRequests++; if (status >= 500) f.http5xx++ }
    }
    // Still serving: a real job runs.
    f.healthy = !exited() && await orAfter(
      withDriver(g, async (grid) => (await grid.get(grid.remote((x: number) => x + 1).remote(41), { timeoutMs: 30_000 })) === 42).catch(() => false),
      40_000, false)
    const out = g.coordinator.output()
    f.exited = exited()
    f.handlerErrors = (out.match(/error handling '/g) ?? []).length
    f.httpErrorLines = (out.match(/HTTP \S+ \S+ failed/g) ?? []).length
    f.uncaught = (out.match(/uncaught|unhandled/gi) ?? []).length
    f.crashes = (f.exited ? 1 : 0) + f.handlerErrors + Math.max(f.http5xx, f.httpErrorLines) + f.httpNoAnswer + f.uncaught
    return f
  } finally { await g.stop() }
}

/** The figure of a fuzz run: every crash, and a coordinator that no longer runs a job. */
export const fuzzFigure = (f: FuzzFigures): number => f.crashes + (f.healthy ? 0 : 1)

export interface AuthFigures {
  attempts: number
  /** Attacks that worked, and those whose outcome showed neither success nor the refusal expected (counted among the allowed). */
  allowed: string[]
  inconclusive: string[]
}

/** Waits for `re` in a process's output after `from` characters. */
async function said(p: Proc, re: RegExp, from: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!re.test(p.output().slice(from))) {
    if (Date.now() > end) throw new Error(`the process did not say ${re} within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * Attempts that must all be refused: a join token acting as a driver (WebSocket and HTTP),
 * job B reading job A's objects (small and large), forged or misused grants presented to the
 * peer holding an object, and the attacks of attacks.ts (a hostile volunteer, a hostile job
 * author). Each attack reports true only on evidence that it worked, and false only on evidence
 * of the refusal it expects (the error, the status, the counter); anything else (a timeout, an
 * error it did not expect) is inconclusive, and counted as allowed.
 */
export async function authViolations(opts: { faults?: Faults } = {}): Promise<AuthFigures> {
  const faults = opts.faults ?? {}
  const g = await faultyGrid(faults, { workers: 0, memory: true, env: { COLONY_HELLO_TIMEOUT_MS: '1500' } })
  let attempts = 0
  const allowed: string[] = [], inconclusive: string[] = []
  const attempt: Attempt = async (name, f) => {
    attempts++
    try {
      if (await f()) allowed.push(name)
    } catch (e) {
      console.error(`  (inconclusive, counted as allowed: ${name}: ${(e as Error).message.split('\n')[0]})`)
      inconclusive.push(name)
      allowed.push(name)
    }
  }
  /** A refusal the attack expects, as `false`; any other error goes on to `attempt` (inconclusive). */
  const refusedWith = (re: RegExp) => (e: Error): false => { if (re.test(e.message)) return false; throw e }
  try {
    await forgedMain(g, attempt)
    // The holder of the objects below: a worker whose clock the scenario can move (clock.ts).
    const clock = new URL('./clock.js', import.meta.url).href
    const holder = await g.addFaultyWorker(['--capabilities', 'a'], { NODE_OPTIONS: `--import=${clock}` })
    // A join token used as a driver.
    await attempt('the join token as a driver', async () => {
      const ws = new WebSocket(g.url.replace('http', 'ws') + '/ws')
      await new Promise((r, j) => { ws.once('open', r); ws.once('error', j) })
      const reply = new Promise<Record<string, unknown>[]>((r) => ws.once('message', (d: Buffer) => r(decodeFrame(d) as Record<string, unknown>[])))
      ws.send(encodeFrame([{ t: 'hello', v: PROTOCOL_VERSION, token: g.joinToken, kind: 'node', role: 'driver', capabilities: [], resources: {} }]))
      const msgs = await reply
      ws.close()
      if (msgs.some((m) => m.t === 'welcome')) return true
      if (msgs.some((m) => m.t === 'error' && m.code === 'AUTH' && /cannot submit jobs/.test(String(m.message)))) return false
      throw new Error(`neither a welcome nor the AuthError: ${JSON.stringify(msgs).slice(0, 200)}`)
    })
    await attempt('the join token starts a job over HTTP', async () => {
      const { status } = await api(g, '/api/jobs', { method: 'POST', token: g.joinToken, body: JSON.stringify({ bundle: 'export default () => 1' }) })
      if (status < 300) return true
      if (status === 401) return false
      throw new Error(`status ${status}`)
    })
    const alice = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    const bob = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      // Every pull plan alice gets (with the grants in it).
      const peer = (alice as unknown as { peer: Peer }).peer
      const plans: PullPlanMsg[] = []
      const objects = peer.objects as unknown as { onPullPlan(m: PullPlanMsg): void }
      const original = objects.onPullPlan.bind(objects)
      objects.onPullPlan = (m) => { plans.push(m); original(m) }
      const make = alice.remote(function make(n: number, v: number) { return new Uint8Array(n).fill(v) }, { capabilities: ['a'] })
      const small = alice.remote(() => 'alice\'s').remote()
      const mine = make.remote(200_000, 1), other = make.remote(200_000, 2)
      await alice.get([small, other, mine])
      // Job B reads job A's objects.
      for (const id of [small.id, mine.id]) {
        await attempt(`driver B reads job A's object ${id}`, () => bob.get(new ObjectRef(id), { timeoutMs: 5000 }).then(() => true, refusedWith(/may not read object/)))
      }
      // Grants: alice's genuine one for `mine`, shown to work, then misused.
      const plan = plans.find((p) => p.id === mine.id), planOther = plans.find((p) => p.id === other.id)
      if (!plan || !planOther || plan.holders[0]?.peer !== planOther.holders[0]?.peer) throw new Error('control: alice got no pull plans for two objects on one holder')
      const genuine: Grant = plan.holders[0].grant
      const data = peer.data!
      const control = async (when: string) => {
        const bytes = await data.fetch(plan)
        if (bytes.length !== plan.size || sha256HexSync(bytes) !== plan.hash) throw new Error(`control: the genuine grant did not fetch ${mine.id} ${when}`)
      }
      await control('before the attacks')
      // The object asked for is `other`, with its true size and hash: only the holder's grant check stands in the way.
      const asOther = { ...plan, id: other.id, size: planOther.size, hash: planOther.hash }
      const fetches: Record<string, PullPlanMsg> = {
        'a grant for one object, to read another': asOther,
        'a grant forged for another object': { ...asOther, holders: [{ peer: plan.holders[0].peer, grant: { ...genuine, obj: other.id } }] },
      }
      for (const [name, p] of Object.entries(fetches)) await attempt(name, () => data.fetch(p).then(() => true, refusedWith(/grant refused/)))
      // The genuine grant once its time is up: the holder's clock moves 3 minutes ahead (grants last 60 s), then back.
      let at = holder.output().length
      holder.child.kill('SIGUSR2')
      await said(holder, /\[clock\] this process's clock is 3 minutes ahead/, at)
      try {
        await attempt('an expired grant', () => data.fetch(plan).then(() => true, refusedWith(/grant refused/)))
      } finally {
        at = holder.output().length
        holder.child.kill('SIGUSR2')
        await said(holder, /\[clock\] this process's clock is 0 minutes ahead/, at)
      }
      await control('after them')
    } finally { await alice.close(); await bob.close() }
    await g.addFaultyWorker()
    await volunteerAttacks(g, attempt)
    await quarantineWash(g, attempt)
    await jobAttacks(g, attempt)
    return { attempts, allowed, inconclusive }
  } finally { await g.stop() }
}
