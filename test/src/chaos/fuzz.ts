/**
 * The fuzz scenario: mutated, retyped and random frames at the coordinator's WebSocket,
 * each counted only once the coordinator is seen to have processed it, then mutated HTTP
 * requests; any crash, thrown handler, 5xx or unanswered request counts (see chaos.ts).
 */
import WebSocket from 'ws'
import { join } from 'node:path'
import { PROTOCOL_VERSION, decodeFrame, encodeFrame, parsePeerMessage } from '@colony-grid/shared'
import { orAfter } from './attacks.js'
import { api, metric } from '../harness.js'
import { faultyGrid, withDriver, type Faults } from './scenarios.js'

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
