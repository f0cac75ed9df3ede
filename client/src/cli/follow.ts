/**
 * Following a job: its log lines and its end, from GET /api/jobs/:id/events (server-sent events).
 *
 * A stream that drops (the coordinator restarts or fails over, a proxy cuts it, nothing arrives for
 * `idleMs`, not even a keep-alive) says nothing about the job: the job runs on. So a drop is never
 * reported as the job failing: follow reconnects with backoff, sends back the last event id it got
 * (`Last-Event-ID: <seq>@<term>`, coordinator/src/job-events.ts) so the coordinator resends only the
 * lines after it, and skips any it resends anyway. A coordinator in another term (restarted: the log
 * lives in memory and is numbered afresh) sends every line it keeps, and those are all new. Only a job
 * that says it ended ends the follow; a coordinator unreachable for `giveUpMs` ends it with exit code 3,
 * and one that keeps answering something other than an event stream (an error, a captive proxy's
 * page) ends it with exit code 1 and what it said.
 */
import type { JobInfo } from '@colony-grid/shared'
import { fail, request, type Target } from '../cli-target.js'
import { CliError, EXIT } from './exit-codes.js'
import { SseParser } from './sse.js'

export interface FollowOptions {
  /** Each log line once, in order (`seq`: its number in the job's log). */
  onLog(line: string, seq: number): void
  /** Each state the stream reports (the last one is the job's end). */
  onState?(job: JobInfo): void
  /** The stream dropped: `why`, and when the next try is. */
  onReconnect?(why: string, inMs: number): void
  /** No byte for this long (the coordinator sends a keep-alive every 15 s): the stream is dead. Default 45 s, or $COLONY_STREAM_IDLE_MS. */
  idleMs?: number
  /** Give up after failing to get a stream back for this long. Default 2 min. */
  giveUpMs?: number
  /** Backoff between tries: from `firstDelayMs` (250 ms), doubling up to `maxDelayMs` (5 s). */
  firstDelayMs?: number
  maxDelayMs?: number
  /** A coordinator answered already (submit just made the job): the first request is retried like any other. */
  reached?: boolean
}

/**
 * Where the follow is: the last event id got (sent back on reconnecting), the last line's number and the
 * term it was given in, and whether a coordinator ever answered (before that, a failure is not a drop).
 */
interface Seen { id?: string; seq: number; term?: string; reached: boolean }

/** `bad`: the answer was not an event stream, nor one that passes (a 502, 503 or 504 does): what it said. */
type Attempt = { ended: JobInfo } | { dropped: string; progressed: boolean; bad?: string }

/** Answers that are not an event stream this many times in a row end the follow (exit code 1). */
const BAD_ANSWERS = 3

/** Follows job `id` until it ends; resolves with its final state (finished, failed or cancelled). */
export async function followJob(t: Target, id: string, opts: FollowOptions): Promise<JobInfo> {
  const { idleMs = Number(process.env.COLONY_STREAM_IDLE_MS) || 45_000, giveUpMs = 120_000, firstDelayMs = 250, maxDelayMs = 5_000 } = opts
  // The last line printed, and whether a coordinator ever answered (before that, a failure is not a drop).
  const seen: Seen = { seq: 0, reached: opts.reached ?? false }
  let delay = firstDelayMs
  let failingSince: number | undefined
  let bad = 0
  for (;;) {
    const attempt = await streamOnce(t, id, seen, idleMs, opts)
    if ('ended' in attempt) return attempt.ended
    if (attempt.progressed) { delay = firstDelayMs; failingSince = undefined }
    bad = attempt.bad === undefined ? 0 : bad + 1
    if (bad >= BAD_ANSWERS) fail(`GET /api/jobs/${id}/events: ${attempt.bad}`, EXIT.failed)
    failingSince ??= Date.now()
    if (Date.now() - failingSince > giveUpMs) {
      fail(`lost job ${id}'s event stream and could not get it back for ${Math.round(giveUpMs / 1000)} s (${attempt.dropped}). ` +
        `The job may still be running: colony status ${id}, colony logs ${id} -f`, EXIT.unreachable)
    }
    opts.onReconnect?.(attempt.dropped, delay)
    await new Promise((r) => setTimeout(r, delay))
    delay = Math.min(delay * 2, maxDelayMs)
  }
}

/** One connection: until the job ends (its final state) or the stream drops (why, and whether anything came). */
async function streamOnce(t: Target, id: string, seen: Seen, idleMs: number, opts: FollowOptions): Promise<Attempt> {
  const abort = new AbortController()
  let idle: ReturnType<typeof setTimeout> | undefined
  const stillAlive = () => {
    clearTimeout(idle)
    idle = setTimeout(() => abort.abort(new Error(`nothing arrived for ${idleMs / 1000} s`)), idleMs)
  }
  let progressed = false
  try {
    stillAlive()
    let res: Response
    const resumed = seen.reached
    try {
      res = await request(t, `/api/jobs/${id}/events`, {
        signal: abort.signal, headers: seen.id !== undefined ? { 'last-event-id': seen.id } : {},
      })
    } catch (e) {
      // No coordinator answered (restarting, failing over): try again, if one ever did (else it is the
      // wrong URL, or none runs: exit 3 at once). A refused token (4) is final.
      if (e instanceof CliError && e.exitCode === EXIT.unreachable && resumed) return { dropped: e.detail, progressed }
      if (abort.signal.aborted) return { dropped: String((abort.signal.reason as Error).message), progressed }
      throw e
    }
    if (res.status === 404 || res.status === 410) {
      const body = await res.json().catch(() => ({})) as { error?: { message?: string } }
      fail(body.error?.message ?? `no job ${id}`, EXIT.failed)
    }
    // A gateway between coordinators (502, 503, 504) or one asking to wait (408, 429): passes, so try again.
    if ([408, 429, 502, 503, 504].includes(res.status)) {
      await res.body?.cancel().catch(() => {})
      return { dropped: `HTTP ${res.status}`, progressed }
    }
    const type = res.headers.get('content-type') ?? ''
    if (!res.ok || !res.body || !/^text\/event-stream\b/i.test(type)) {
      return { dropped: `HTTP ${res.status}${res.ok ? `, ${type || 'no content type'}` : ''}`, progressed, bad: await whatItSaid(res, type) }
    }
    seen.reached = true
    const parser = new SseParser()
    const decoder = new TextDecoder()
    // Lines numbered by the order they come in, for a coordinator that sends no ids: it resends the whole log.
    let ordinal = 0
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        stillAlive()
        for (const ev of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (ev.event === 'log') {
            ordinal++
            // `<seq>@<term>`: a line from another term than the last one seen is new (the coordinator restarted).
            const m = ev.id === undefined ? null : /^(\d+)(?:@(.*))?$/.exec(ev.id)
            const seq = m ? Number(m[1]) : ordinal
            const term = m ? m[2] : undefined
            if (term === seen.term && seq <= seen.seq) continue
            if (ev.id !== undefined) seen.id = ev.id
            seen.seq = seq
            seen.term = term
            progressed = true
            opts.onLog(JSON.parse(ev.data) as string, seq)
          } else if (ev.event === 'state') {
            const job = JSON.parse(ev.data) as JobInfo
            progressed = true
            opts.onState?.(job)
            if (job.state !== 'running') return { ended: job }
          }
        }
      }
      return { dropped: 'the coordinator closed the stream before the job ended', progressed }
    } catch (e) {
      if (abort.signal.aborted) return { dropped: String((abort.signal.reason as Error).message), progressed }
      return { dropped: `the stream broke (${(e as Error).message})`, progressed }
    }
  } finally {
    clearTimeout(idle)
    abort.abort()
  }
}

/** What an answer that is not an event stream said: the coordinator's error message, else the start of its text. */
async function whatItSaid(res: Response, type: string): Promise<string> {
  const text = await res.text().catch(() => '')
  let message: string | undefined
  try { message = (JSON.parse(text) as { error?: { message?: string } }).error?.message } catch { /* not JSON */ }
  const said = message ?? (text.replace(/\s+/g, ' ').trim().slice(0, 200) || res.statusText)
  return res.ok ? `HTTP ${res.status} with ${type || 'no content type'}, not an event stream (a proxy in the way?): ${said}` : `HTTP ${res.status}: ${said}`
}
