/**
 * How a coordinator that does not lead answers (hot standby, leadership.ts): it serves no state
 * and says where the leader is. Pages are still served (a join page from here connects and is
 * sent on), and so is the WebSocket, which is closed with CLOSE_STANDBY so that peers move to the
 * next coordinator at once. On a shared store, the grid's other coordinators' pages may read
 * this one's API (a tab fetches bundles and model files from whichever coordinator leads).
 */
import type { Hono } from 'hono'
import { cors } from 'hono/cors'
import type { WSEvents } from 'hono/ws'
import { CLOSE_STANDBY } from '@colony-grid/shared'
import type { Leadership } from './leadership.js'

/** `leadership`: undefined until the server knows its public URL (it answers as a standby meanwhile). */
export function answerAsStandby(app: Hono, leadership: () => Leadership | undefined, sharedStore: boolean): void {
  // Only the grid's own origins: anything else could read with a visitor's token.
  const gridOrigins = () => new Set(leadership()?.urls().map((u) => new URL(u).origin))
  app.use('*', cors({ origin: (origin) => (sharedStore && gridOrigins().has(origin) ? origin : null), allowHeaders: ['authorization', 'content-type'], maxAge: 600 }))
  app.use('*', async (c, next) => {
    const l = leadership()
    const role = l?.role ?? 'standby', leaderUrl = l?.leaderUrl
    if (role === 'leader') return next()
    const path = c.req.path
    // /metrics: the process's own metrics, and colony_leader 0 (metrics.ts); /readyz says why not (readiness.ts).
    if (path === '/ws' || path === '/api/public' || path === '/metrics' || path === '/readyz') return next()
    const body = { standby: true, leader: leaderUrl ?? null, role }
    if (path === '/healthz') return c.json({ ok: true, ...body })
    if (path.startsWith('/api/')) {
      return c.json({ ...body, error: { code: 'STANDBY', message: `this coordinator is a standby${leaderUrl ? `; the leader is ${leaderUrl}` : ''}: try another coordinator of the grid` } }, 503)
    }
    return next()
  })
}

/** A peer's socket at a standby: closed at once, naming the leader when it is known (a reason holds at most 123 bytes). */
export function standbySocket(leaderUrl: string | undefined): WSEvents {
  return { onOpen: (_ev, ws) => ws.close(CLOSE_STANDBY, leaderUrl ? `standby; the leader is ${leaderUrl}`.slice(0, 120) : 'standby') }
}
