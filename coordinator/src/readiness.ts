/**
 * Whether this coordinator serves the grid now (GET /readyz, and GridSummary.ready): it leads,
 * and is not in the window after a restart in which the peers it knew reconnect and claim their
 * work (control/recovery.ts; nothing is scheduled meanwhile). /healthz says the process is
 * alive; /readyz is what a load balancer or an orchestrator's readiness probe should ask.
 */
import type { ControlPlane } from './control/control-plane.js'
import type { Role } from './leadership.js'

export type Readiness = { ready: true } | { ready: false; why: string }

/**
 * `role` undefined: leadership is not set up yet (the server listens first). `self`: this
 * coordinator's URL (it is the leader it names while it loads the tables to lead). `alone`: no
 * shared store, so it never stands by for another: until it leads, it is starting.
 */
export function readinessOf(role: Role | undefined, leaderUrl: string | undefined, control: ControlPlane | undefined, o: { self?: string; alone?: boolean } = {}): Readiness {
  if (role === 'deposed') return { ready: false, why: 'this coordinator has closed, or lost its lease' }
  if (role === undefined) return { ready: false, why: 'starting: this coordinator does not serve yet' }
  if (role !== 'leader' && (o.alone || (leaderUrl !== undefined && leaderUrl === o.self))) return { ready: false, why: 'starting: this coordinator is loading the grid\'s state, to lead' }
  if (role !== 'leader' || !control) return { ready: false, why: `standby, the leader is ${leaderUrl ?? 'not known yet'}` }
  const w = control.reconciliation
  if (w) return { ready: false, why: `waiting for peers to reconnect (${w.back} of ${w.expected} back), until ${new Date(w.until).toISOString()}` }
  return { ready: true }
}
