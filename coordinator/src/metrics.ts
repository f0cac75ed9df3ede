/**
 * GET /metrics (Prometheus text format, via prom-client): one Registry per coordinator (tests
 * run several in one process, so never prom-client's global one), merged at each scrape with
 * one process-wide Registry of the process's own metrics.
 *
 * - The process's own metrics under their standard names (process_*, nodejs_*), as the
 *   dashboards operators already have expect them. prom-client's default metrics start a GC
 *   observer and an event-loop-delay monitor that it never stops, so they are set up once per
 *   process, on first use, whatever the number of coordinators it starts (tests start many).
 * - The grid now, read from the control plane at each scrape (gauges), and its counters since
 *   this coordinator took over (counters: they start again from 0 on a new leader, which
 *   Prometheus's rate() reads as a reset).
 * - Tasks by job: a gauge of the running jobs' tasks by state, labelled `job`. Job ids are
 *   unbounded over a grid's life; a counter per job would add a series for every job ever run, in
 *   this process and in Prometheus. Only running jobs are labelled, so the series are bounded by
 *   the jobs running at once, and a finished job's go from the next scrape on. Totals over time
 *   are colony_tasks_finished_total and the histograms (by outcome).
 * - Histograms of task timings, fed by the control plane (ControlOptions.taskTimings):
 *   colony_task_run_seconds          an attempt, from its dispatch to a peer (TaskInfo.startedAt) to the
 *                                    peer's report (outcome finished, failed or lost; peer_kind node or
 *                                    browser). With pipelining it includes the time the task waited in the
 *                                    peer's own queue and the report's way back.
 *   colony_task_queue_wait_seconds   from a task (or actor call) being queued as ready (its arguments
 *                                    exist) to its dispatch to a peer: waiting for a free slot, its
 *                                    user's fair share, or a peer that can run it.
 *   colony_scheduling_latency_seconds the coordinator's own part of that: from the later of the task
 *                                    becoming ready and the first event of the turn that placed it (a
 *                                    message, a peer joining, a timer) to its dispatch. Event-loop delay
 *                                    and the scheduling pass itself; not the wait for a slot.
 *   They are our own bucket counters (a Float64Array per label combination, made up front), not
 *   prom-client Histograms: observing allocates nothing, looks up no label object, and never
 *   throws (a value that is not a finite number is dropped, a negative one counts as 0), so a
 *   scheduling turn can never be cut short by its timing.
 * - Ingresses' families (serving's), which they give as plain numbers (ingress.ts); two
 *   ingresses that give a family of the same name have their samples merged (summed where
 *   their labels are the same).
 * - With a metrics token (CoordinatorOptions.metricsToken, COLONY_METRICS_TOKEN), a scrape must
 *   carry it, or the operator's token, as `Authorization: Bearer`: the `job` label names jobs.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { PeerKind } from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import type { AttemptOutcome, Counters, TaskTimings } from './control/options.js'
import type { Ingress, MetricFamily } from './ingress.js'

/** Seconds, from 1 ms to 10 min. */
export const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

export interface MetricsSource {
  /** The control plane while this coordinator leads; undefined as a standby (then only the process's metrics and colony_leader). */
  control(): ControlPlane | undefined
  /** WebSockets closed for sending no hello in time (peer-socket.ts). */
  helloTimeouts(): number
  ingress: readonly Ingress[]
}

let processRegistry: Registry | undefined
/** The process's own metrics (process_*, nodejs_*): one Registry for the whole process, made on first use and kept. */
export function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/** Whether `given` is `expected`, in time that does not depend on where they differ (nor on their lengths). */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

/** The control plane's counters, with what each counts. */
const COUNTERS: [keyof Counters, string, string][] = [
  ['tasksFinished', 'colony_tasks_finished_total', 'Task results recorded (each task once), since this coordinator took over.'],
  ['tasksRetried', 'colony_tasks_retried_total', 'Task attempts run again: errors with retryExceptions, peers lost under them, objects rebuilt from lineage.'],
  ['duplicateResults', 'colony_duplicate_results_total', 'Results that came for tasks already decided, and were ignored.'],
  ['relayedBytes', 'colony_relayed_bytes_total', 'Object bytes relayed through the coordinator (peers that could not connect directly).'],
  ['badMessages', 'colony_bad_messages_total', 'Peer messages refused as malformed or not allowed.'],
  ['quorumDisagreements', 'colony_quorum_disagreements_total', 'Replica results that disagreed with an accepted quorum.'],
  ['peersQuarantined', 'colony_peers_quarantined_total', 'Peers quarantined for disagreeing with quorums.'],
  ['rateLimited', 'colony_messages_rate_limited_total', 'Messages that came faster than maxMessagesPerSecond (their connection was then read more slowly).'],
  ['signalsRefused', 'colony_signals_refused_total', 'WebRTC signals dropped between peers that no pull paired.'],
  ['holdsRefused', 'colony_holds_refused_total', 'Objects a peer claimed to hold that it was never sent nor made.'],
]

const KEPT_HELP: Record<string, string> = {
  jobs: 'Job records held (running, and finished ones until retention drops them).',
  tasks: 'Task records held.',
  objects: 'Object records held.',
  bundles: 'Job bundles held.',
  quorums: 'Replicated tasks whose quorum is being judged.',
}

export class CoordinatorMetrics implements TaskTimings {
  readonly registry = new Registry()
  private readonly runSeconds: BucketHistogram
  /** The series of colony_task_run_seconds by outcome and peer kind, made up front: observing looks up two properties, nothing more. */
  private readonly runSeries: Record<AttemptOutcome, Record<PeerKind, Series>>
  private readonly queueWait: Series
  private readonly schedulingLatency: Series
  private turnRequestedAt = 0
  /** Ingresses' families, registered when first seen. */
  private readonly foreign = new Map<string, ForeignFamily>()

  constructor(private readonly source: MetricsSource) {
    const registers = [this.registry]
    processMetrics()
    const control = () => source.control()

    new Gauge({
      name: 'colony_leader', help: 'Whether this coordinator leads its grid (1) or stands by (0).', registers,
      collect() { this.set(control() ? 1 : 0) },
    })
    new Gauge({
      name: 'colony_peers', help: 'Peers connected now, by kind (node, browser) and role (worker, driver).', labelNames: ['kind', 'role'] as const, registers,
      collect() {
        this.reset()
        const c = control()
        if (!c) return
        const n = new Map<string, { kind: string; role: string; count: number }>()
        for (const s of c.sessions.values()) {
          const key = `${s.kind}/${s.role}`
          const e = n.get(key)
          if (e) e.count++; else n.set(key, { kind: s.kind, role: s.role, count: 1 })
        }
        for (const e of n.values()) this.set({ kind: e.kind, role: e.role }, e.count)
      },
    })
    new Gauge({
      name: 'colony_peers_paused', help: 'Connected peers that take no new tasks now (a hidden tab).', registers,
      collect() {
        let paused = 0
        for (const s of control()?.sessions.values() ?? []) if (s.paused) paused++
        this.set(paused)
      },
    })
    new Gauge({
      name: 'colony_tasks_queued', help: 'Tasks ready and waiting for a slot.', registers,
      collect() { this.set(control()?.queuedTasks() ?? 0) },
    })
    new Gauge({
      name: 'colony_reconciling', help: 'Whether a restarted coordinator is waiting for the peers it knew to reconnect (nothing is scheduled meanwhile; /readyz says 503).', registers,
      collect() { this.set(control()?.reconciliation ? 1 : 0) },
    })
    new Gauge({
      name: 'colony_job_tasks', help: 'The running jobs\' tasks, by job and state (a finished job\'s series go).', labelNames: ['job', 'state'] as const, registers,
      collect() {
        this.reset()
        for (const { job, tasks } of control()?.runningJobsTasks() ?? []) {
          for (const [state, n] of Object.entries(tasks)) this.set({ job, state }, n)
        }
      },
    })
    for (const kind of Object.keys(KEPT_HELP)) {
      new Gauge({
        name: `colony_${kind}_kept`, help: `${KEPT_HELP[kind]} What retention bounds.`, registers,
        collect() { const kept = control()?.kept() as Record<string, number> | undefined; this.set(kept?.[kind] ?? 0) },
      })
    }
    for (const [key, name, help] of COUNTERS) counterOf(registers, name, help, () => control()?.counters[key] ?? 0)
    counterOf(registers, 'colony_hello_timeouts_total', 'WebSockets closed for sending no hello in time.', () => source.helloTimeouts())

    const outcomes: AttemptOutcome[] = ['finished', 'failed', 'lost']
    const kinds: PeerKind[] = ['node', 'browser']
    this.runSeconds = new BucketHistogram(
      'colony_task_run_seconds', 'Task attempts, from their dispatch to a peer to the peer\'s report, by outcome (finished, failed, lost) and peer kind.',
      DURATION_BUCKETS_S, outcomes.flatMap((outcome) => kinds.map((peer_kind) => ({ outcome, peer_kind }))),
    )
    const run = (outcome: AttemptOutcome, kind: PeerKind) => this.runSeconds.series[outcomes.indexOf(outcome) * kinds.length + kinds.indexOf(kind)]
    this.runSeries = {
      finished: { node: run('finished', 'node'), browser: run('finished', 'browser') },
      failed: { node: run('failed', 'node'), browser: run('failed', 'browser') },
      lost: { node: run('lost', 'node'), browser: run('lost', 'browser') },
    }
    const queueWait = new BucketHistogram(
      'colony_task_queue_wait_seconds', 'Tasks and actor calls, from being queued as ready to their dispatch to a peer.', DURATION_BUCKETS_S, [{}],
    )
    const schedulingLatency = new BucketHistogram(
      'colony_scheduling_latency_seconds', 'The coordinator\'s own delay in placing a task: from the later of its becoming ready and the first event of the turn that placed it, to its dispatch.',
      DURATION_BUCKETS_S, [{}],
    )
    this.queueWait = queueWait.series[0]
    this.schedulingLatency = schedulingLatency.series[0]
    for (const h of [this.runSeconds, queueWait, schedulingLatency]) this.registry.registerMetric(h as unknown as Metric)
  }

  get contentType(): string { return this.registry.contentType }

  /** The whole exposition: the process's metrics, this coordinator's, and the ingresses' families. */
  async text(): Promise<string> {
    const own = processMetrics()
    const families = new Map<string, MetricFamily[]>()
    for (const i of this.source.ingress) {
      for (const family of i.metrics?.() ?? []) {
        const same = families.get(family.name)
        if (same) same.push(family); else families.set(family.name, [family])
      }
    }
    for (const [name, given] of families) {
      let f = this.foreign.get(name)
      if (!f) {
        // A name the coordinator or the process already uses would make two families of one name (and registerMetric throws): left out.
        if (this.registry.getSingleMetric(name) || own.getSingleMetric(name)) continue
        this.foreign.set(name, f = new ForeignFamily(name, given[0].help, given[0].type))
        this.registry.registerMetric(f as unknown as Metric)
      }
      f.take(given)
    }
    for (const f of this.foreign.values()) if (!families.has(f.name)) f.clear()
    return Registry.merge([own, this.registry]).metrics()
  }

  // TaskTimings: the control plane's hot paths call these. Numbers in, no allocation, no throw.

  turnBegan(requestedAt: number): void { this.turnRequestedAt = requestedAt }

  placed(readyAt: number | undefined): void {
    if (readyAt === undefined) return
    const now = performance.now()
    this.queueWait.observe((now - readyAt) / 1000)
    this.schedulingLatency.observe((now - Math.max(readyAt, this.turnRequestedAt)) / 1000)
  }

  ended(startedAt: number | undefined, outcome: AttemptOutcome, peerKind: PeerKind): void {
    if (startedAt === undefined) return
    // An outcome or kind outside the types (none today) finds no series, and is not counted.
    this.runSeries[outcome]?.[peerKind]?.observe((Date.now() - startedAt) / 1000)
  }
}

/** One label combination of a BucketHistogram: counts per bucket (not cumulative; the last is above every bound), their sum and count. */
export class Series {
  private readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(readonly labels: Readonly<Record<string, string>>, private readonly bounds: Float64Array) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  /** Counts `v` (seconds): a value that is not a finite number is dropped, a negative one (a clock stepped back) counts as 0. */
  observe(v: number): void {
    if (!Number.isFinite(v)) return
    if (v < 0) v = 0
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && v > bounds[i]) i++
    this.counts[i]++
    this.sum += v
    this.count++
  }

  reset(): void { this.counts.fill(0); this.sum = 0; this.count = 0 }

  /** How many observations are at or below bucket `i`'s bound (`bounds.length`: all of them). */
  cumulative(i: number): number {
    let n = 0
    for (let k = 0; k <= i; k++) n += this.counts[k]
    return n
  }
}

type Sample = { metricName?: string; labels: Record<string, string | number>; value: number }

/**
 * A histogram whose label combinations are all known up front, each counted in a Series; read by
 * prom-client's Registry as it reads its own Histogram (the same lines: `le` first, then the
 * labels). Every combination is exposed from the start, at 0, so rate() has a series to read.
 */
export class BucketHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly series: Series[]
  private readonly bounds: Float64Array

  constructor(readonly name: string, readonly help: string, buckets: readonly number[], labelSets: Readonly<Record<string, string>>[]) {
    this.bounds = Float64Array.from(buckets)
    this.series = labelSets.map((labels) => new Series(labels, this.bounds))
  }

  reset(): void { for (const s of this.series) s.reset() }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = []
    for (const s of this.series) {
      for (let i = 0; i <= this.bounds.length; i++) {
        values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i] : '+Inf', ...s.labels }, value: s.cumulative(i) })
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count })
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values })
  }
}

/** A counter whose value the control plane keeps (it is set at each scrape). */
function counterOf(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()) } })
}

/**
 * An ingress's family, as prom-client's registry asks a metric for its values. Each scrape it
 * takes the family as every ingress that has one gives it: samples with the same labels are
 * summed (a histogram's bucket by bucket, onto the first one's bounds); a family of another
 * type under the same name is left out.
 */
class ForeignFamily {
  readonly aggregator = 'sum'
  private values: Sample[] = []

  constructor(readonly name: string, readonly help: string, readonly type: MetricFamily['type']) {}

  take(families: readonly MetricFamily[]): void {
    const given = families.filter((f) => f.type === this.type)
    if (this.type !== 'histogram') {
      const byLabels = new Map<string, Sample>()
      for (const f of given) {
        if (f.type === 'histogram') continue
        for (const s of f.samples) {
          const key = labelKey(s.labels)
          const had = byLabels.get(key)
          if (had) had.value += s.value; else byLabels.set(key, { labels: { ...s.labels }, value: s.value })
        }
      }
      this.values = [...byLabels.values()]
      return
    }
    let bounds: readonly number[] | undefined
    const byLabels = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number }>()
    for (const f of given) {
      if (f.type !== 'histogram') continue
      bounds ??= f.buckets
      // Each of this family's buckets goes to the first bound at or above its own (all of them onto +Inf past the last).
      const into = f.buckets.map((le) => { const i = bounds!.findIndex((b) => b >= le); return i < 0 ? bounds!.length : i })
      into.push(bounds.length)
      for (const s of f.series) {
        const key = labelKey(s.labels)
        let merged = byLabels.get(key)
        if (!merged) byLabels.set(key, merged = { labels: { ...s.labels }, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 })
        into.forEach((to, i) => { merged!.counts[to] += s.counts[i] ?? 0 })
        merged.sum += s.sum
      }
    }
    const values: Sample[] = []
    for (const s of byLabels.values()) {
      let running = 0
      bounds!.forEach((le, i) => { running += s.counts[i]; values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: running }) })
      running += s.counts[bounds!.length]
      values.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: running })
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: running })
    }
    this.values = values
  }

  clear(): void { this.values = [] }
  reset(): void { this.values = [] }
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values })
  }
}

/** The same labels, in whatever order, give the same key. */
function labelKey(labels: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]))
}
