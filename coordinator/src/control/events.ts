/**
 * The events that wire the managers together, as Ray's gcs_server.cc installs listeners
 * between its managers: a manager that changes something others depend on says so here,
 * and the composition root (control-plane.ts) connects the listeners, in a fixed order.
 *
 * Dispatch is synchronous and allocation-free (a listener array per event, called with at
 * most two arguments), so an event costs what the direct calls it replaces cost. Per-task
 * transitions that have one consumer stay direct method calls.
 */
import type { SerializedError } from '@colony-grid/shared'
import type { PeerSession } from '../peer-session.js'
import type { JobRec } from './jobs.js'
import type { ObjRec } from './objects.js'

export interface ControlEvents {
  /** A peer left (its socket closed, its heartbeats stopped, it reconnected, its token was revoked). */
  peerRemoved: [s: PeerSession, why: string]
  /** An object was made (or failed): tasks waiting on it and readers waiting for it go on. */
  objectReady: [o: ObjRec, state: 'ready' | 'error']
  /** The last copy of an object some task made is gone: lineage may rebuild it. */
  objectLost: [o: ObjRec]
  /** An object was disposed of (freed by its owner, or its job ended): readers still waiting get `error`. */
  objectFreed: [o: ObjRec, error: SerializedError]
  /** A job is ending (its main ended, its driver left, it was cancelled): its work is cancelled. */
  jobEnding: [job: JobRec, reason: string]
  /** A job ended: what it made goes with it. */
  jobFinished: [job: JobRec]
}

type Listener<A extends unknown[]> = (...args: A) => void

export class EventBus<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners: { [K in keyof E]?: Listener<E[K]>[] } = {}

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    (this.listeners[event] ??= []).push(listener)
  }

  /** Calls the event's listeners in the order they were added (at most two arguments: no rest array is made). */
  emit<K extends keyof E>(event: K, a: E[K][0], b?: E[K][1]): void {
    const ls = this.listeners[event] as ((a: unknown, b: unknown) => void)[] | undefined
    if (!ls) return
    for (let i = 0; i < ls.length; i++) ls[i](a, b)
  }
}

export type ControlBus = EventBus<ControlEvents>
