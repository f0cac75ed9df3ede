/**
 * GET /api/summary: the grid in counts (`GridSummary`, protocol.ts), what the IDE's cluster
 * panel, the dashboard and `colony status` poll. It reads counts the control plane keeps as
 * things change (tasks, jobs, objects) and one pass over the connected peers, never the tasks,
 * so it costs the same with 100,000 tasks as with none.
 *
 * Any submit token may read it, and it sees the whole grid: these are counts, with no job's
 * id, name or data, of the same kind /api/peers already shows every driver (each peer's load,
 * running and finished tasks).
 */
import type { Context, Hono } from 'hono'
import type { GridSummary } from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import type { TokenGrant } from './tokens.js'

export interface SummaryApiOptions {
  control: () => ControlPlane
  needRole: (c: Context, allowed: ('driver' | 'worker')[]) => TokenGrant
  /** Whether this coordinator serves yet (what /readyz says); ready when not given. */
  ready?: () => boolean
}

export function mountSummaryApi(app: Hono, o: SummaryApiOptions): void {
  app.get('/api/summary', (c) => {
    o.needRole(c, ['driver'])
    const summary: GridSummary = { at: Date.now(), ready: o.ready?.() ?? true, ...o.control().summary() }
    return c.json(summary)
  })
}
