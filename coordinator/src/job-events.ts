/**
 * GET /api/jobs/:id/events: a job's log so far, then its lines and state changes as they happen
 * (server-sent events), until the job ends or the client goes.
 *
 * The contract a client (the CLI's `logs -f` and `follow`) relies on:
 * - each 'log' event has `id: <seq>@<term>`: `seq` is the line's number over the job's whole log
 *   (job-log.ts; the `seq` of GET /api/jobs/:id/logs), and `term` names this coordinator's term (its
 *   control plane's start, base 36). Logs live in memory, so a restarted (or failed-over) coordinator
 *   numbers a job's lines from 1 again, in a new term. Its data is the line as a JSON string;
 * - 'state' events (a JobInfo as JSON) have no id: the first comes after the log kept so far,
 *   the last when the job ends, and the stream then closes;
 * - a client that reconnects with `Last-Event-ID: <seq>@<term>` (EventSource sends the last id by
 *   itself) or `?after=<seq>@<term>` gets only the lines past seq when the term is this one; from
 *   another term, or with no term (`?after=5`), it gets every line kept: the lines it had are gone,
 *   so all those kept are new to it. Then the current state;
 * - while nothing happens, a comment line (`: keep-alive`) every `keepAliveMs` (15 s, or
 *   COLONY_SSE_KEEPALIVE_MS), so proxies keep the connection and a client can tell a quiet job
 *   from a dead connection.
 */
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import { ProtocolError } from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import { jsonSafe } from './json-safe.js'

export const DEFAULT_SSE_KEEPALIVE_MS = 15_000

/** What goes out next: an event, or a comment. */
type Out = { event: string; data: string; id?: string } | { comment: string }

export function jobEvents(c: Context, control: ControlPlane, first: ReturnType<ControlPlane['jobInfo']> & object, opts: { keepAliveMs?: number } = {}): Response {
  const id = first.id
  const term = control.jobLogTerm
  const after = resumeAfter(c, term)
  const keepAliveMs = opts.keepAliveMs ?? (Number(process.env.COLONY_SSE_KEEPALIVE_MS) || DEFAULT_SSE_KEEPALIVE_MS)
  return streamSSE(c, async (stream) => {
    const queue: Out[] = []
    let wake: (() => void) | undefined
    const push = (out: Out) => { queue.push(out); wake?.() }
    const log = (seq: number, line: string) => push({ event: 'log', data: JSON.stringify(line), id: `${seq}@${term}` })
    // Replayed and heard in one synchronous stretch: no line falls between the two.
    for (const l of control.jobLogAfter(id, after)) log(l.seq, l.line)
    push({ event: 'state', data: JSON.stringify(jsonSafe(first)) })
    let ended = first.state !== 'running'
    const stop = control.listenJob(id, (ev) => {
      if (ev.type === 'log') log(ev.seq, ev.line)
      else { push({ event: 'state', data: JSON.stringify(jsonSafe(ev.job)) }); ended = true }
    })
    const keepAlive = setInterval(() => { if (queue.length === 0) push({ comment: 'keep-alive' }) }, keepAliveMs)
    stream.onAbort(() => { ended = true; wake?.() })
    try {
      for (;;) {
        while (queue.length) {
          const m = queue.shift()!
          if ('comment' in m) await stream.write(`: ${m.comment}\n\n`)
          else await stream.writeSSE(m)
        }
        if (ended) break
        await new Promise<void>((r) => { wake = r })
        wake = undefined
      }
    } finally { clearInterval(keepAlive); stop() }
  })
}

/**
 * The last line a reconnecting client had: `Last-Event-ID` (what EventSource sends), else `?after=`,
 * as `<seq>@<term>`. A number from this term: resume after it; from another, or with none: 0, all kept.
 */
function resumeAfter(c: Context, term: string): number {
  const header = c.req.header('last-event-id')
  const query = c.req.query('after')
  const [from, raw] = header !== undefined && header !== '' ? ['the Last-Event-ID header', header] : ['after', query]
  if (raw === undefined || raw === '') return 0
  const m = /^(\d{1,15})(?:@([0-9a-z]{1,20}))?$/.exec(raw.trim())
  if (!m) throw new ProtocolError(`${from} must be the id of a 'log' event (<line's number>@<term>), not "${raw.slice(0, 40)}"`)
  return m[2] === term ? Number(m[1]) : 0
}
