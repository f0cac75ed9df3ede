/**
 * Replicated tasks (`replicas: k`, BOINC's idea): the replicas of each such task, and the
 * judgement of their results once they end (quorum.ts says when results agree; peers that
 * disagree with an accepted result lose standing in peers.ts).
 */
import { FAULTS, TaskError, returnId, serializeError, type ResultOut } from '@colony-grid/shared'
import { largestAgreement, type Vote } from '../quorum.js'
import type { JobManager } from './jobs.js'
import type { ObjectDirectory } from './objects.js'
import { TERMINAL, type ControlOptions } from './options.js'
import type { PeerManager } from './peers.js'
import type { TaskResults } from './task-results.js'
import type { TaskManager, TaskRec } from './tasks.js'

/** A replicated task never runs itself; its replicas (tasks `<id>~<n>`) do, each on another peer. */
interface Quorum { replicas: string[]; need: number; max: number }

export class QuorumManager {
  /** By the replicated task's id. Bound: as the task records, which retention drops with these (dropTasks). */
  private readonly quorums = new Map<string, Quorum>()
  /** Replicated tasks a replica of which ended this turn: judged at the end of the turn (then cleared). */
  private readonly judgeLater = new Set<TaskRec>()
  private tasks!: TaskManager
  private results!: TaskResults
  private jobs!: JobManager
  private objects!: ObjectDirectory
  private peers!: PeerManager

  constructor(private readonly opts: ControlOptions, private readonly requestTick: () => void) {}

  wire(m: { tasks: TaskManager; results: TaskResults; jobs: JobManager; objects: ObjectDirectory; peers: PeerManager }): void {
    ({ tasks: this.tasks, results: this.results, jobs: this.jobs, objects: this.objects, peers: this.peers } = m)
  }

  /** Quorums held. */
  get size(): number { return this.quorums.size }

  /** Retention dropped these tasks' records: their quorums go too. */
  dropTasks(ids: readonly string[]): void {
    if (this.quorums.size > 0) for (const id of ids) this.quorums.delete(id)
  }

  /** A replicated task's replicas' ids (none for a task that is not replicated). */
  replicasOf(t: TaskRec): readonly string[] {
    if (this.quorums.size === 0) return []
    return this.quorums.get(t.id)?.replicas.filter((r) => r !== undefined) ?? []
  }

  isReplicated(t: TaskRec): boolean { return this.quorums.size > 0 && this.quorums.has(t.id) }

  /** A task with `replicas: k` (k > 1) gets its k replicas. */
  replicate(t: TaskRec, k: number): void {
    this.quorums.set(t.id, this.quorumOf(t, k))
    for (let i = 0; i < k; i++) this.addReplica(t)
  }

  private quorumOf(t: TaskRec, k: number): Quorum {
    return { replicas: [], need: Math.min(k, t.spec.opts.quorum ?? Math.floor(k / 2) + 1), max: k + 2 }
  }

  /** After a restart: replicas are tasks `<task>~<n>`; they go back to their task, which judges them again. */
  initialize(): void {
    for (const t of this.tasks.all()) {
      const cut = t.id.lastIndexOf('~')
      const main = cut > 0 ? this.tasks.get(t.id.slice(0, cut)) : undefined
      if (!main || main.job !== t.job || (main.spec.opts.replicas ?? 1) <= 1) continue
      let q = this.quorums.get(main.id)
      if (!q) this.quorums.set(main.id, q = this.quorumOf(main, main.spec.opts.replicas!))
      q.replicas[Number(t.id.slice(cut + 1))] = t.id
      t.replicaOf = main.id
      if (!TERMINAL.has(main.state)) this.judgeLater.add(main)
    }
  }

  /** One more run of a replicated task, on a peer none of its other replicas used. */
  private addReplica(main: TaskRec): void {
    const q = this.quorums.get(main.id)!
    const { replicas: _k, quorum: _q, compare: _c, ...opts } = main.spec.opts
    const r = this.tasks.add(this.jobs.get(main.job)!, { ...main.spec, id: `${main.id}~${q.replicas.length}`, name: `${main.spec.name}~${q.replicas.length}`, opts }, false)
    r.replicaOf = main.id
    q.replicas.push(r.id)
  }

  /** A replica ended: its task is judged at the end of the turn. */
  replicaEnded(r: TaskRec): void {
    const main = this.tasks.get(r.replicaOf!)
    if (main) { this.judgeLater.add(main); this.requestTick() }
  }

  /** The end of the turn: judge the tasks whose replicas ended. */
  judgePending(): void {
    for (const m of this.judgeLater) { this.judgeLater.delete(m); this.judge(m) }
  }

  /** The task is cancelled: so are its replicas. */
  cancelReplicas(t: TaskRec, reason: string): void {
    const q = this.quorums.size > 0 ? this.quorums.get(t.id) : undefined
    for (const id of q?.replicas ?? []) { const r = this.tasks.get(id); if (r) this.tasks.cancel(r, reason) }
  }

  /** Where a replica's siblings run or ran: it must not go there (a peer would vote twice). */
  siblingPeers(r: TaskRec): Set<string> {
    const out = new Set<string>()
    for (const id of this.quorums.get(r.replicaOf!)?.replicas ?? []) {
      const sib = this.tasks.get(id)
      const at = sib && id !== r.id ? sib.peer ?? sib.ranOn : undefined
      if (at) out.add(at)
    }
    return out
  }

  /** Is there a worker none of the task's replicas used, to break a tie? (Else it would wait for one forever.) */
  private anotherPeerFor(main: TaskRec, q: Quorum): boolean {
    const used = new Set<string>()
    for (const id of q.replicas) { const r = this.tasks.get(id); const at = r?.peer ?? r?.ranOn; if (at) used.add(at) }
    const caps = main.spec.opts.capabilities ?? []
    for (const s of this.peers.workers()) if (!used.has(s.id) && caps.every((c) => s.capabilities.has(c))) return true
    return false
  }

  private resultsOf(t: TaskRec): ResultOut[] {
    return Array.from({ length: t.spec.opts.numReturns ?? 1 }, (_, i) => {
      const o = this.objects.get(returnId(t.id, i))!
      return { size: o.size, inline: o.inline, hash: o.hash }
    })
  }

  /** After a replica ends: accept a result a quorum agrees on, run another replica, or give up. */
  private judge(main: TaskRec): void {
    const q = this.quorums.get(main.id)!
    const replicas = q.replicas.map((id) => this.tasks.get(id)!)
    if (TERMINAL.has(main.state)) {
      for (const r of replicas) if (!TERMINAL.has(r.state)) this.tasks.cancel(r, 'its task is decided')
      return
    }
    // A replica's vote: its results, or the error its own code threw. A vanished peer does not vote.
    const votes: Vote[] = []
    const voted = new Set<string>()
    for (const r of replicas) {
      // One vote per peer: a peer that somehow ran two replicas counts once.
      if (r.ranOn && voted.has(r.ranOn)) continue
      if (r.ranOn) voted.add(r.ranOn)
      if (r.state === 'finished') votes.push({ replica: r.id, peer: r.ranOn ?? '', results: this.resultsOf(r) })
      else if (r.state === 'failed' && r.error?.type === 'TaskError' && r.ranOn) votes.push({ replica: r.id, peer: r.ranOn, error: r.error })
    }
    const agreeing = largestAgreement(votes, main.spec.opts.compare ?? {})
    if (agreeing.length >= (FAULTS.acceptWrongReplica ? 1 : q.need)) { this.accept(main, q, agreeing, votes); return }
    const pending = replicas.filter((r) => !TERMINAL.has(r.state)).length
    if (agreeing.length + pending >= q.need) return
    if (q.replicas.length < q.max && this.anotherPeerFor(main, q)) { this.addReplica(main); return }
    this.results.fail(main, serializeError(new TaskError(
      `no quorum for task ${main.spec.name} (${main.id}): ${q.replicas.length} replicas, on peers ${[...new Set(votes.map((v) => v.peer))].join(', ')}, ` +
      `gave results of which at most ${agreeing.length} agree; ${q.need} must${q.replicas.length < q.max ? ', and no other peer is there to ask' : ''}. If the results are floats from different backends, compare them with { tolerance }.`,
      { taskId: main.id, taskName: main.spec.name })))
  }

  private accept(main: TaskRec, q: Quorum, agreeing: Vote[], votes: Vote[]): void {
    this.peers.judged(agreeing, votes, `${main.spec.name} (${main.id})`)
    const winner = agreeing[0]
    if (winner.error) this.results.fail(main, { ...winner.error, taskId: main.id, taskName: main.spec.name })
    else if (winner.results!.some((r) => !r.inline)) {
      this.results.fail(main, serializeError(new TaskError(
        `task ${main.spec.name} (${main.id}) has replicas, so its results must be small enough to keep in the coordinator (at most ${this.opts.limits.inlineMaxBytes} bytes each): return a summary or a digest, and keep big data in objects`,
        { taskId: main.id, taskName: main.spec.name })))
    } else this.results.finish(main, winner.results!)
    for (const id of q.replicas) {
      const r = this.tasks.get(id)!
      if (!TERMINAL.has(r.state)) this.tasks.cancel(r, 'its task is decided')
      for (let i = 0; i < (r.spec.opts.numReturns ?? 1); i++) this.objects.freeObject(returnId(r.id, i))
    }
  }
}
