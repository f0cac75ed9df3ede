/**
 * What the HTTP API reads of the object directory (objects.ts), kept as records change rather
 * than counted per request: each job's records in the order they were made (GET
 * /api/jobs/:id/objects pages them), how many of those are freed, and the bytes of the records
 * not freed (GET /api/summary). The directory tells it of every record that comes, is
 * resized, is freed or goes; it owns nothing else.
 */
import type { ObjectSummary, Page } from '@colony-grid/shared'
import { pageOf, type PageQuery } from '../paging.js'
import { SeqList } from './seq-list.js'

export type ObjState = 'pending' | 'ready' | 'error'
export const OBJECT_STATES: readonly ObjState[] = ['pending', 'ready', 'error']

/** What the listing reads of a record (objects.ts's ObjRec). */
interface Listed { id: string; job: string; size: number; state: ObjState; inline?: Uint8Array; freed?: boolean; locations: ReadonlySet<string> }

/** A job's object records in the order they were made, and how many of them are freed. */
interface JobObjects { list: SeqList; freed: number }

export class ObjectListing {
  /** Bound: as the directory's records (each is in its job's list once). */
  private readonly byJob = new Map<string, JobObjects>()
  private nextSeq = 0
  /** Bytes of the records not freed (their recorded sizes). */
  private liveBytes = 0

  /** `lookup`: the directory's record of an id, as it is now. */
  constructor(private readonly lookup: (id: string) => Listed | undefined) {}

  /** Bytes of the objects not freed, as recorded. */
  get bytesKept(): number { return this.liveBytes }

  /** A new record; `replaced`: the one it replaces under the same id, which keeps its place in the list. */
  added(o: Listed, replaced: Listed | undefined): void {
    if (replaced) this.removed(replaced)
    let mine = this.byJob.get(o.job)
    if (!mine) this.byJob.set(o.job, mine = { list: new SeqList(), freed: 0 })
    if (!replaced) mine.list.push(o.id, this.nextSeq++)
    this.liveBytes += o.size
  }

  /** A record's size is about to change to `size`. */
  resized(o: Listed, size: number): void {
    if (!o.freed) this.liveBytes += size - o.size
  }

  /** A record is freed: call before setting `o.freed`; false if it already was. */
  freed(o: Listed): boolean {
    if (o.freed) return false
    this.liveBytes -= o.size
    const mine = this.byJob.get(o.job)
    if (mine) mine.freed++
    return true
  }

  /** A record goes (or is replaced): its bytes and freed mark no longer count. Its id leaves the list with `dropIds` or `dropJob`. */
  removed(o: Listed): void {
    if (!o.freed) { this.liveBytes -= o.size; return }
    const mine = this.byJob.get(o.job)
    if (mine) mine.freed--
  }

  /** These records went from these jobs' lists (one pass per job). */
  dropIds(jobs: Iterable<string>, gone: ReadonlySet<string>): void {
    for (const job of jobs) this.byJob.get(job)?.list.removeAll(gone)
  }

  /** A job's records all went (retention). */
  dropJob(jobId: string): void { this.byJob.delete(jobId) }

  /**
   * A page of a job's objects that are still alive (not freed), in the order they were made,
   * with where their bytes are. Without a state filter the total is kept; with one, it is
   * counted over the job's objects.
   */
  page(jobId: string, q: PageQuery<ObjState>): Page<ObjectSummary> {
    const mine = this.byJob.get(jobId)
    if (!mine) return { items: [], total: 0, truncated: false }
    const { list } = mine
    const states = q.states
    const live = (i: number) => { const o = this.lookup(list.idAt(i)); return !!o && !o.freed && (!states || states.has(o.state)) }
    let total = list.length - mine.freed
    if (states) { total = 0; for (let i = 0; i < list.length; i++) if (live(i)) total++ }
    return pageOf(list, q, total, (i) => {
      const o = this.lookup(list.idAt(i))!
      return { id: o.id, state: o.state, size: o.size, inline: !!o.inline, holders: [...o.locations] }
    }, live)
  }
}
