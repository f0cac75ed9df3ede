/**
 * GET /api/jobs/:id/events: a job's log so far, then its lines and state changes as they happen
 * (server-sent events), until the job ends or the client goes.
 */
import type { Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { ControlPlane } from './control/control-plane.js'
import { jsonSafe } from './json-safe.js'

export function jobEvents(c: Context, control: ControlPlane, first: ReturnType<ControlPlane['jobInfo']> & object): Response {
  const id = first.id
  return streamSSE(c, async (stream) => {
    const queue: { event: string; data: string }[] = []
    let wake: (() => void) | undefined
    const push = (event: string, data: unknown) => { queue.push({ event, data: JSON.stringify(data) }); wake?.() }
    for (const line of control.jobLogs(id)?.lines ?? []) push('log', line)
    push('state', jsonSafe(first))
    let ended = first.state !== 'running'
    const stop = control.listenJob(id, (ev) => {
      if (ev.type === 'log') push('log', ev.line)
      else { push('state', jsonSafe(ev.job)); ended = true }
    })
    stream.onAbort(() => { ended = true; wake?.() })
    try {
      for (;;) {
        while (queue.length) { const m = queue.shift()!; await stream.writeSSE(m) }
        if (ended) break
        await new Promise<void>((r) => { wake = r })
        wake = undefined
      }
    } finally { stop() }
  })
}
