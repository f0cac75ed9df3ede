/**
 * Where a search keeps its state in the grid: the coordinator's named state (`/api/state/`, durable in
 * its control store), under `tune/<searchId>`: the search document (options, the trainable's source,
 * every trial with its config, state and reports), `…/with` (the values every trial gets) and
 * `…/checkpoints/<trialId>` (each trial's latest). `tune.resume` reads them back.
 *
 * Writes never hold the search up: the document is written at most one request at a time, the latest
 * version only, a little after it changes (longer when writes are slow), and again after a failure
 * (the coordinator may be restarting). `flush` waits for what is pending.
 */
import { decodeValue, encodeValue } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import type { TrialRecord, TuneOptions } from './types.js'

/** What a search keeps. `options` leaves out `with` (kept apart) and anything that is not data. */
export interface SearchDocument {
  version: 1
  id: string
  name?: string
  createdAt: number
  options: Omit<TuneOptions, 'with'>
  trainable: string
  state: 'running' | 'finished' | 'stopped' | 'failed'
  trials: TrialRecord[]
}

export interface Checkpoint { epoch: number; value: unknown }

type Requester = Grid & { request?: (path: string, init?: RequestInit) => Promise<Response> }

const MIN_GAP_MS = 200
const RETRY_MS = 1_000
/** A request that takes longer is given up (and retried): a hung one must not hold `flush` past its deadline. */
const REQUEST_MS = 15_000

/** An answer that retrying will not change (a 4xx: too big, not allowed). */
class Refused extends Error {}

export class SearchStore {
  private dirty?: () => SearchDocument
  private writing?: Promise<void>
  private timer?: ReturnType<typeof setTimeout>
  private lastWriteMs = 0
  private readonly pendingCheckpoints = new Map<string, Checkpoint>()
  /** The last failure, said once until a write works again. */
  private failing = false
  private closed = false

  constructor(private readonly grid: Requester, readonly searchId: string, private readonly log: (line: string) => void) {}

  /** False for a grid without the coordinator's HTTP API (inside a task): the search then keeps nothing. */
  static available(grid: Grid): boolean { return typeof (grid as Requester).request === 'function' }

  private key(rest = ''): string { return `/api/state/tune/${encodeURIComponent(this.searchId)}${rest}` }

  private async put(path: string, value: unknown): Promise<void> {
    const body = encodeValue(value)
    const res = await this.grid.request!(path, { method: 'PUT', body: body as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(REQUEST_MS) })
    if (!res.ok) {
      const text = `PUT ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`
      throw res.status >= 400 && res.status < 500 ? new Refused(text) : new Error(text)
    }
  }

  private async get<T>(path: string): Promise<T | undefined> {
    const res = await this.grid.request!(path)
    if (res.status === 404) return undefined
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`)
    return decodeValue<T>(new Uint8Array(await res.arrayBuffer()))
  }

  /** Written once, before the first trial: a resumed search needs them. */
  async begin(doc: SearchDocument, values: Record<string, unknown>): Promise<void> {
    await this.put(this.key('/with'), values)
    await this.put(this.key(), doc)
  }

  /** The document changed: `snapshot` is called when it is written (so it writes the newest). */
  changed(snapshot: () => SearchDocument): void {
    this.dirty = snapshot
    this.schedule(Math.max(MIN_GAP_MS, 3 * this.lastWriteMs))
  }

  checkpoint(trial: string, c: Checkpoint): void {
    this.pendingCheckpoints.set(trial, c)
    this.schedule(0)
  }

  private schedule(ms: number): void {
    if (this.timer || this.writing || this.closed) return
    this.timer = setTimeout(() => { this.timer = undefined; void this.writeNow() }, ms)
  }

  private writeNow(): Promise<void> {
    if (this.writing) return this.writing
    const cps = [...this.pendingCheckpoints]
    this.pendingCheckpoints.clear()
    const snapshot = this.dirty
    this.dirty = undefined
    if (!snapshot && cps.length === 0) return Promise.resolve()
    // Taken now, with the checkpoints: the document never names a checkpoint written after it.
    const doc = snapshot?.()
    const t0 = performance.now()
    this.writing = (async () => {
      try {
        // Checkpoints first: the document may name a checkpoint epoch only once its checkpoint is there.
        for (const [trial, c] of cps) await this.put(this.key(`/checkpoints/${encodeURIComponent(trial)}`), c)
        if (doc) await this.put(this.key(), doc)
        this.lastWriteMs = performance.now() - t0
        if (this.failing) { this.failing = false; this.log(`tune ${this.searchId}: its state is being kept again`) }
      } catch (e) {
        if (e instanceof Refused) {
          // Retrying would be refused again: say so, and keep what comes later (it may fit).
          this.log(`tune ${this.searchId}: the coordinator refused its state: ${e.message}`)
        } else {
          for (const [trial, c] of cps) if (!this.pendingCheckpoints.has(trial)) this.pendingCheckpoints.set(trial, c)
          this.dirty ??= snapshot
          if (!this.failing) { this.failing = true; this.log(`tune ${this.searchId}: could not keep its state (retrying): ${(e as Error).message}`) }
          await new Promise((r) => setTimeout(r, RETRY_MS))
        }
      } finally {
        this.writing = undefined
      }
      if (this.dirty || this.pendingCheckpoints.size) this.schedule(this.failing ? 0 : MIN_GAP_MS)
    })()
    return this.writing
  }

  /** Writes what is pending, retrying for up to `timeoutMs`. */
  async flush(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    clearTimeout(this.timer)
    this.timer = undefined
    while ((this.dirty || this.pendingCheckpoints.size || this.writing) && Date.now() < deadline) {
      await (this.writing ?? this.writeNow())
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  /** The search is over: nothing more is written, and no retry keeps the process alive. */
  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
  }

  async load(): Promise<{ doc: SearchDocument; values: Record<string, unknown> }> {
    const doc = await this.get<SearchDocument>(this.key())
    if (!doc) throw new Error(`no search ${this.searchId} is kept on this coordinator (was it started with persist: false, by another token, or has it expired?)`)
    if (doc.version !== 1) throw new Error(`search ${this.searchId} was kept by another version of the tuning library (${String(doc.version)})`)
    return { doc, values: (await this.get<Record<string, unknown>>(this.key('/with'))) ?? {} }
  }

  loadCheckpoint(trial: string): Promise<Checkpoint | undefined> {
    return this.get<Checkpoint>(this.key(`/checkpoints/${encodeURIComponent(trial)}`))
  }
}
