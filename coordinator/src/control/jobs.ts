/**
 * The job table (Ray's GcsJobManager): jobs, the functions they define, the bundles they may
 * use, their logs and listeners, and how a job ends. The HTTP API's read-only projections of a
 * job are in views.ts.
 */
import {
  AuthError, CancelledError, JOB_TEXT_LIMITS, ProtocolError, clip, newJobId, serializeError,
  type FnDef, type HelloMsg, type JobState, type LogLine, type Page, type SerializedError, type TaskSpec, type TaskState,
} from '@colony-grid/shared'
import { JobLog } from '../job-log.js'
import { pageOf, type PageQuery } from '../paging.js'
import type { PeerSession } from '../peer-session.js'
import type { JobRow, StoreSnapshot } from '../store/types.js'
import type { TokenGrant } from '../tokens.js'
import type { ControlBus } from './events.js'
import { DEFAULT_MAX_JOB_LOG_BYTES, type ControlOptions, type JobEvent, type JobOptions } from './options.js'
import type { PeerManager } from './peers.js'
import { SeqList } from './seq-list.js'

const MAX_JOB_LOG_LINES = 10_000
/** The last log term handed out in this process: each control plane's is later than the one before. */
let lastLogTerm = 0
export const JOB_STATES: readonly JobState[] = ['running', 'finished', 'failed', 'cancelled']
/** `setTimeout`'s longest delay: a longer task limit would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

export interface JobRec extends JobRow {
  fns: Map<string, FnDef>
  /** Created with its first line. */
  log?: JobLog
  driverPeer?: string
  listeners: Set<(ev: JobEvent) => void>
  /** What its log has already warned about (work no peer can run), each written once. */
  warned?: Set<string>
  /** Its place in the order jobs were made (`order`). */
  seq: number
}

export class JobManager {
  /** Bound: running jobs, and finished ones until retention (maxSummaries) drops them. */
  private readonly jobs = new Map<string, JobRec>()
  /**
   * Each stored bundle: the token ids that uploaded it (kept here so checks need no store read), and
   * since when no job that keeps its work has used it. Bound: retention drops a bundle idle for its
   * `detailMs` (dropIdleBundles), so what is left is what recent jobs use or were just given.
   */
  private readonly bundles = new Map<string, { owners: Set<string>; idleSince: number }>()
  /** The jobs in the order they were made (GET /api/jobs pages them). Bound: as `jobs`. */
  private readonly order = new SeqList()
  private nextSeq = 0
  /** How many jobs are in each state, kept as they change (GET /api/summary). */
  private readonly states: Record<JobState, number> = { running: 0, finished: 0, failed: 0, cancelled: 0 }

  /**
   * This control plane's term, in base 36: when it started (a later one than any before it in this
   * process). Logs live in memory, so a job's log here is numbered afresh from 1, and a line's number
   * means something only with the term it was given in: the event stream sends both (job-events.ts).
   */
  readonly logTerm: string

  constructor(private readonly opts: ControlOptions, private readonly bus: ControlBus, private readonly peers: PeerManager) {
    lastLogTerm = Math.max(Date.now(), lastLogTerm + 1)
    this.logTerm = lastLogTerm.toString(36)
  }

  initialize(snap: StoreSnapshot): void {
    for (const b of snap.bundles) {
      this.bundles.set(b.hash, { owners: new Set(), idleSince: Date.now() })
      for (const owner of b.owners) this.bundleUploaded(b.hash, owner)
    }
    const rows = [...snap.jobs].sort((a, b) => a.createdAt - b.createdAt)
    for (const row of rows) this.add({ ...row, fns: new Map(), listeners: new Set(), seq: this.nextSeq++ })
    for (const { job, def } of snap.fns) this.jobs.get(job)?.fns.set(def.id, def)
  }

  private add(job: JobRec): void {
    this.jobs.set(job.id, job)
    this.order.push(job.id, job.seq)
    this.states[job.state]++
  }

  get(id: string): JobRec | undefined { return this.jobs.get(id) }
  /** Jobs held, by state: kept as they change, so reading it costs nothing. */
  stateCounts(): Record<JobState, number> { return { ...this.states } }

  /**
   * A page of the jobs `grant` may see (GET /api/jobs), newest first unless the query asks
   * otherwise. The operator's total without a filter is kept; another token's, or one with a
   * state filter, is counted over the jobs held (at most retention's maxSummaries).
   */
  page(q: PageQuery<JobState>, grant: TokenGrant): Page<string> {
    const { order } = this
    const states = q.states
    const all = grant.operator && !states
    const match = all ? undefined : (i: number) => { const j = this.jobs.get(order.idAt(i))!; return (grant.operator || j.owner === grant.id) && (!states || states.has(j.state)) }
    let total = order.length
    if (match) {
      if (grant.operator) total = [...states!].reduce((n, s) => n + this.states[s], 0)
      else { total = 0; for (let i = 0; i < order.length; i++) if (match(i)) total++ }
    }
    return pageOf(order, q, total, (i) => order.idAt(i), match)
  }
  /** Job records held: running, keeping their work, or only a summary. */
  get size(): number { return this.jobs.size }
  ids(): IterableIterator<string> { return this.jobs.keys() }
  fnOf(job: JobRec, fnId: string): FnDef | undefined { return job.fns.get(fnId) }

  /** The user a job's work counts against, for fair share: the token that owns the job. */
  ownerOf(jobId: string): string { return this.jobs.get(jobId)?.owner ?? '' }

  /** Who may see a job over the HTTP API: the token that started it, and the operator's. */
  visible(jobId: string, grant: TokenGrant): boolean {
    const job = this.jobs.get(jobId)
    return !!job && (grant.operator || job.owner === grant.id)
  }

  create(name: string, owner: string, bundle?: string, jobOpts: JobOptions = {}): JobRec {
    const { taskTimeoutMs } = jobOpts
    if (taskTimeoutMs !== undefined && !(typeof taskTimeoutMs === 'number' && taskTimeoutMs >= 0 && taskTimeoutMs <= MAX_TIMEOUT_MS)) {
      throw new ProtocolError(`taskTimeoutMs must be a number of milliseconds from 0 (no limit) to ${MAX_TIMEOUT_MS}`)
    }
    const job: JobRec = { id: newJobId(), name, state: 'running', createdAt: Date.now(), bundle, owner, taskTimeoutMs, fns: new Map(), listeners: new Set(), seq: this.nextSeq++ }
    this.add(job)
    this.opts.store.jobs.put(this.row(job))
    return job
  }

  /** A job from an uploaded bundle: its default export runs as the job's main task, whose spec this returns. */
  createBundleJob(bundleHash: string, name: string, args: Uint8Array, owner: string, opts: { resources?: Record<string, number>; capabilities?: string[] } & JobOptions = {}): { job: JobRec; main: TaskSpec } {
    const { taskTimeoutMs, ...placement } = opts
    const job = this.create(name, owner, bundleHash, { taskTimeoutMs })
    const def: FnDef = { id: `${bundleHash}#default`, kind: 'bundle', name: 'main', bundle: bundleHash, export: 'default' }
    job.fns.set(def.id, def)
    this.opts.store.fns.put(job.id, def)
    const main: TaskSpec = { id: `t.${job.id}.main`, name: `${name}:main`, fn: def.id, args, deps: [], opts: { ...placement, maxRetries: 3 } }
    job.rootTask = main.id
    this.opts.store.jobs.put(this.row(job))
    return { job, main }
  }

  /** A driver's job: the one it resumes (only as the peer it was, with the job's own token), or a new one. */
  driverJob(s: PeerSession, m: HelloMsg, grant: TokenGrant): void {
    const prior = m.jobId ? this.jobs.get(m.jobId) : undefined
    const job = prior && prior.state === 'running' && prior.owner === grant.id && s.resumed ? prior : this.create(m.name ?? 'driver', grant.id, undefined, { taskTimeoutMs: m.taskTimeoutMs })
    job.driverPeer = s.id
    s.jobId = job.id
  }

  defineFn(s: PeerSession, def: FnDef, jobId?: string): void {
    const job = s.role === 'driver' ? this.jobs.get(s.jobId!) : jobId && s.jobs.has(jobId) ? this.jobs.get(jobId) : undefined
    if (!job) throw new AuthError(`peer ${s.id} cannot define functions in job ${jobId ?? '?'}`)
    if (job.fns.has(def.id)) return
    // A job may use only bundles its own token uploaded: naming another's hash would hand it that code.
    if (def.kind === 'bundle' && !this.usesBundle(job, def.bundle) && !(job.owner && this.bundles.get(def.bundle)?.owners.has(job.owner))) {
      throw new AuthError(`job ${job.id} cannot use bundle ${def.bundle}: upload it with this job's token (POST /api/bundles)`)
    }
    job.fns.set(def.id, def)
    this.opts.store.fns.put(job.id, def)
  }

  /** A token uploaded a bundle (the store already holds its code): it is kept at least `detailMs` from now. */
  bundleUploaded(hash: string, owner: string): void {
    let b = this.bundles.get(hash)
    if (!b) this.bundles.set(hash, b = { owners: new Set(), idleSince: 0 })
    b.owners.add(owner)
    b.idleSince = Date.now()
  }

  /** Bundles stored. */
  get bundleCount(): number { return this.bundles.size }

  /**
   * Retention: forgets the bundles no job that keeps its work has used for `idleMs`, and returns
   * them, for the store to drop. A running job's bundles are always kept; one uploaded and not yet
   * used gets the same `idleMs` to be used in. One pass over the jobs kept, so it runs on retention's
   * timer, not at each job's end.
   */
  dropIdleBundles(now: number, idleMs: number): string[] {
    const used = new Set<string>()
    for (const job of this.jobs.values()) {
      if (job.summary) continue
      if (job.bundle) used.add(job.bundle)
      for (const def of job.fns.values()) if (def.kind === 'bundle') used.add(def.bundle)
    }
    const dropped: string[] = []
    for (const [hash, b] of this.bundles) {
      if (used.has(hash)) b.idleSince = now
      else if (now - b.idleSince >= idleMs) { this.bundles.delete(hash); dropped.push(hash) }
    }
    return dropped
  }

  /**
   * Who may fetch a bundle's code (GET /api/bundles/:hash): the operator; a submit token that
   * uploaded it or owns a job that uses it; a peer (authenticated by its secret) with work of
   * a job that uses it, or a driver whose job does.
   */
  bundleReadable(hash: string, who: { grant: TokenGrant } | { peer: PeerSession }): boolean {
    if ('grant' in who) {
      const { grant } = who
      if (grant.role !== 'driver') return false
      if (grant.operator || this.bundles.get(hash)?.owners.has(grant.id)) return true
      for (const job of this.jobs.values()) if (job.owner === grant.id && this.usesBundle(job, hash)) return true
      return false
    }
    const s = who.peer
    if (s.closed) return false
    const jobs = s.role === 'driver' ? (s.jobId ? [s.jobId] : []) : s.jobs.keys()
    for (const id of jobs) { const job = this.jobs.get(id); if (job && this.usesBundle(job, hash)) return true }
    return false
  }

  /** The job runs code of this bundle: its own, or a bundle function it defined. */
  private usesBundle(job: JobRec, hash: string): boolean {
    if (job.bundle === hash) return true
    for (const def of job.fns.values()) if (def.kind === 'bundle' && def.bundle === hash) return true
    return false
  }

  /** A job ends: what it left running is cancelled (`jobEnding`), then it is recorded as ended (`jobFinished`). */
  end(job: JobRec, state: 'finished' | 'failed' | 'cancelled', reason: string, err?: SerializedError): void {
    if (job.state !== 'running') return
    this.bus.emit('jobEnding', job, reason)
    if (job.state !== 'running') return
    this.states[job.state]--
    this.states[state]++
    job.state = state
    job.finishedAt = Date.now()
    job.error = err
    this.opts.store.jobs.put(this.row(job))
    this.bus.emit('jobFinished', job)
  }

  /**
   * Retention: a finished job keeps only its summary (`summary`: its counts and result, which its
   * tasks and objects no longer give); its functions, log and listeners go. Returns its functions' ids.
   */
  dropDetails(job: JobRec, summary: NonNullable<JobRow['summary']>): string[] {
    const fns = [...job.fns.keys()]
    job.fns.clear()
    job.log = undefined
    job.warned = undefined
    job.listeners.clear()
    job.summary = summary
    this.opts.store.jobs.put(this.row(job))
    return fns
  }

  /** Retention: the summary goes too. */
  expire(job: JobRec): void {
    if (!this.jobs.delete(job.id)) return
    this.order.remove(job.seq)
    this.states[job.state]--
    this.opts.store.jobs.remove(job.id)
  }

  /** Finished jobs, for retention to initialise from. */
  finished(): JobRec[] { return [...this.jobs.values()].filter((j) => j.state !== 'running') }

  /** A driver left for good (it said `bye`, or its token was revoked): its job ends. */
  finishDriverJob(jobId: string): void {
    const job = this.jobs.get(jobId)
    if (job) this.end(job, 'finished', 'its driver disconnected')
  }

  cancel(jobId: string): boolean {
    const job = this.jobs.get(jobId)
    if (!job) return false
    this.end(job, 'cancelled', 'job cancelled', serializeError(new CancelledError(`job ${job.id} was cancelled`)))
    return true
  }

  /** A peer left: a driver's job no longer has its driver to tell. */
  peerRemoved(s: PeerSession): void {
    if (s.jobId) { const job = this.jobs.get(s.jobId); if (job?.driverPeer === s.id) job.driverPeer = undefined }
  }

  /** What a job's listeners (GET /api/jobs/:id/events) hear. */
  tell(job: JobRec, ev: JobEvent): void { for (const l of job.listeners) l(ev) }

  /** A line of the coordinator's own in a job's log (and its listeners'). */
  private note(job: JobRec, line: string): void {
    const seq = this.logOf(job).add(line)
    this.tell(job, { type: 'log', line, seq })
  }

  /** A warning of the coordinator's in a job's log, once per job and `about`; the coordinator's own log gets it too. */
  warnOnce(jobId: string, about: string, message: string): void {
    const job = this.jobs.get(jobId)
    if (!job || (job.warned ??= new Set()).has(about)) return
    job.warned.add(about)
    this.note(job, `[coordinator] job ${job.id}: ${message}`)
    this.opts.log(`job ${job.id}: ${message}`)
  }

  /** Lines a task's code wrote: each is cut to size, the job keeps only its most recent ones (job-log.ts), and its driver gets them. */
  taskLines(jobId: string, task: { id: string; name: string }, peer: string, lines: string[]): void {
    const job = this.jobs.get(jobId)!
    const clipped = lines.map((line) => clip(line, JOB_TEXT_LIMITS.logLineChars))
    const log = this.logOf(job)
    for (const line of clipped) {
      const full = `[${task.name} ${task.id} @ ${peer}] ${line}`
      const seq = log.add(full)
      for (const l of job.listeners) l({ type: 'log', line: full, seq })
    }
    this.peers.get(job.driverPeer)?.send({ t: 'tlog', task: task.id, name: task.name, peer, lines: clipped })
  }

  /** A job's log, made with its first line. */
  private logOf(job: JobRec): JobLog {
    return job.log ??= new JobLog(this.opts.maxJobLogBytes ?? DEFAULT_MAX_JOB_LOG_BYTES, MAX_JOB_LOG_LINES)
  }

  /** A page of a job's most recent log lines (within `maxJobLogBytes`), numbered from 1 over its whole log. */
  logPage(jobId: string, q: PageQuery): Page<LogLine> | undefined {
    const job = this.jobs.get(jobId)
    if (!job) return undefined
    return job.log?.page(q) ?? pageOf({ length: 0, seqAt: () => 0 }, q, 0, () => ({ seq: 0, line: '' }))
  }

  /** A job's log lines kept whose number is past `seq`, oldest first (for a reconnecting event stream). */
  logAfter(jobId: string, seq: number): LogLine[] { return this.jobs.get(jobId)?.log?.after(seq) ?? [] }

  listen(jobId: string, l: (ev: JobEvent) => void): () => void {
    const job = this.jobs.get(jobId)
    if (!job) return () => {}
    job.listeners.add(l)
    return () => job.listeners.delete(l)
  }

  /** A running job's spent tasks went (spent-records.ts): its row counts them, so a restart still does. */
  addDropped(job: JobRec, states: readonly TaskState[]): void {
    const d = job.dropped ??= {}
    for (const s of states) d[s] = (d[s] ?? 0) + 1
    this.opts.store.jobs.put(this.row(job))
  }

  private row(j: JobRec): JobRow {
    return { id: j.id, name: j.name, state: j.state, createdAt: j.createdAt, finishedAt: j.finishedAt, rootTask: j.rootTask, bundle: j.bundle, error: j.error, owner: j.owner, ...(j.taskTimeoutMs !== undefined ? { taskTimeoutMs: j.taskTimeoutMs } : {}), ...(j.summary ? { summary: j.summary } : {}), ...(j.dropped ? { dropped: j.dropped } : {}) }
  }
}
