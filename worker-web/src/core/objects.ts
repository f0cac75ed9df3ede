/**
 * Finding object values for this peer: readiness subscriptions, pulling bytes from
 * the holders (relayed by the coordinator until the WebRTC data plane lands), and
 * serving the objects this peer holds to others.
 */
import { deserializeError, sha256Hex, type ChunkMsg, type JobId, type ObjectId, type ObjectInfo, type PullFailMsg, type PullPlanMsg, type ServeMsg } from '@colony-grid/shared'
import type { ControlConnection } from './connection.js'
import type { DataPlane } from './data-plane.js'
import type { LocalObjectStore } from './object-store.js'
import { deferred, type Deferred } from './turn.js'

interface Pull { id: ObjectId; job: JobId; chunks: Uint8Array[]; got: number; done: Deferred<Uint8Array> }

/**
 * Everything here is kept per job: one peer runs tasks of many jobs, and a task may learn of, wait
 * for and read only objects of its own job, whatever ids its code names. The coordinator checks the
 * same (`sub` and `pull` carry the asking job); this side makes sure nothing cached for one job
 * answers another.
 */
const keyOf = (job: JobId, id: ObjectId) => `${job} ${id}`

export class ObjectResolver {
  private readonly infos = new Map<string, ObjectInfo>()
  /** The job each object in `infos` belongs to, so a drop finds its entry. */
  private readonly ownerJob = new Map<ObjectId, JobId>()
  private readonly waiting = new Map<string, Deferred<ObjectInfo>>()
  private readonly pulls = new Map<number, Pull>()
  private readonly pullsByKey = new Map<string, Promise<Uint8Array>>()
  private nextReq = 1
  private subBatch = new Map<JobId, ObjectId[]>()
  private subQueued = false
  bytesIn = 0
  bytesOut = 0

  constructor(
    private readonly conn: ControlConnection, private readonly store: LocalObjectStore, private chunkBytes: number,
    private readonly data?: DataPlane,
    /** Where a fallback to the relay is reported (once per holder). */
    private readonly say?: (line: string) => void,
  ) {}

  /** Holders whose failed transfers were reported already. */
  private readonly reported = new Set<string>()

  setChunkBytes(n: number): void { this.chunkBytes = n }

  /** Resolves when the coordinator reports the object ready (or failed), as `job` may see it. */
  ready(id: ObjectId, job: JobId): Promise<ObjectInfo> {
    const key = keyOf(job, id)
    const known = this.infos.get(key)
    if (known) return Promise.resolve(known)
    let d = this.waiting.get(key)
    if (!d) {
      d = deferred<ObjectInfo>()
      this.waiting.set(key, d)
      this.subscribe(job, [id])
    }
    return d.promise
  }

  /** Subscriptions made in one go (a get of many refs) travel as one message per job. */
  private subscribe(job: JobId, ids: ObjectId[]): void {
    const batch = this.subBatch.get(job)
    if (batch) batch.push(...ids); else this.subBatch.set(job, ids)
    if (this.subQueued) return
    this.subQueued = true
    queueMicrotask(() => this.sendSubs())
  }

  private sendSubs(): void {
    this.subQueued = false
    const batches = this.subBatch
    this.subBatch = new Map()
    for (const [job, ids] of batches) {
      for (let i = 0; i < ids.length; i += 10_000) this.conn.send({ t: 'sub', ids: ids.slice(i, i + 10_000), job })
    }
  }

  /**
   * Records what the coordinator said of an object (an `obj` message, or a `run`'s deps): for
   * `info.job`, the job it belongs to (or, on a refusal, the job that asked), else for `job`.
   */
  learned(info: ObjectInfo, job = info.job): void {
    if (!job) return // the coordinator always names the job; an answer for nobody is dropped
    const key = keyOf(job, info.id)
    // A refusal answers only the job that asked, and is not kept: it is not the object's record.
    if (info.error?.type !== 'AuthError') { this.infos.set(key, info); this.ownerJob.set(info.id, job) }
    const d = this.waiting.get(key)
    if (d) { this.waiting.delete(key); d.resolve(info) }
  }

  /** The bytes of a ready object of `job`: local, inline, or pulled from a holder. */
  fetch(info: ObjectInfo, job: JobId): Promise<Uint8Array> {
    if (info.error) return Promise.reject(deserializeError(info.error))
    const local = this.store.getFor(info.id, job)
    if (local) return Promise.resolve(local)
    if (info.inline) return Promise.resolve(info.inline)
    const key = keyOf(job, info.id)
    let p = this.pullsByKey.get(key)
    if (!p) {
      const req = this.nextReq++
      const pull: Pull = { id: info.id, job, chunks: [], got: 0, done: deferred() }
      this.pulls.set(req, pull)
      p = pull.done.promise
      this.pullsByKey.set(key, p)
      const cleanup = () => { this.pulls.delete(req); this.pullsByKey.delete(key) }
      p.then(cleanup, cleanup)
      this.conn.send({ t: 'pull', req, id: info.id, job })
    }
    return p
  }

  onChunk(m: ChunkMsg): void {
    const pull = this.pulls.get(m.req)
    if (!pull) return
    if (m.seq === 0) { pull.chunks = []; pull.got = 0 } // a restarted transfer, from another holder
    if (m.seq !== pull.chunks.length) return
    pull.chunks.push(m.data)
    pull.got += m.data.byteLength
    this.bytesIn += m.data.byteLength
    if (!m.last) return
    const bytes = pull.chunks.length === 1 ? pull.chunks[0] : concat(pull.chunks, pull.got)
    if (m.size !== undefined && bytes.byteLength !== m.size) {
      pull.done.reject(new Error(`object ${pull.id}: got ${bytes.byteLength} bytes through the coordinator's relay, expected ${m.size}`))
      return
    }
    // Settles the pull whatever happens: a failed check fails it (its task goes back to the coordinator), never a hang.
    const accept = (hash: string | undefined) => {
      if (m.hash && hash !== m.hash) {
        pull.done.reject(new Error(`object ${pull.id} came through the coordinator's relay but does not match the hash its producer reported: its holder has a corrupt copy`))
        return
      }
      this.keepCopy(pull, bytes)
    }
    if (!m.hash) { accept(undefined); return }
    sha256Hex(bytes).then(accept).catch((e: unknown) => pull.done.reject(new Error(`object ${pull.id}: could not check the bytes the relay sent: ${e instanceof Error ? e.message : String(e)}`)))
  }

  /** The coordinator named holders to read from directly; if none of them delivers, the coordinator relays. */
  onPullPlan(m: PullPlanMsg): void {
    const pull = this.pulls.get(m.req)
    if (!pull) return
    const viaRelay = () => { if (this.pulls.has(m.req)) this.conn.send({ t: 'pull', req: m.req, id: m.id, relay: true, job: pull.job }) }
    if (!this.data) { viaRelay(); return }
    this.data.fetch(m).then((bytes) => {
      if (this.pulls.get(m.req) === pull) this.keepCopy(pull, bytes)
    }, (e: unknown) => {
      const holders = m.holders.map((h) => h.peer).join(', ')
      if (this.say && !this.reported.has(holders)) {
        if (this.reported.size >= 1000) this.reported.clear()
        this.reported.add(holders)
        this.say(`could not read ${m.id} from ${holders || 'any holder'} peer to peer (${e instanceof Error ? e.message : String(e)}); reading it through the coordinator's relay`)
      }
      viaRelay()
    }).catch((e: unknown) => pull.done.reject(e))
  }

  onPullFail(m: PullFailMsg): void {
    const pull = this.pulls.get(m.req)
    if (pull) pull.done.reject(deserializeError(m.error))
  }

  /** Another peer wants an object held here; send it in chunks, minding the socket's buffer. Never rejects: a failure is a serveFail. */
  async serve(m: ServeMsg): Promise<void> {
    try {
      const bytes = this.store.get(m.id)
      if (!bytes) { this.conn.send({ t: 'serveFail', req: m.req, reason: `object ${m.id} is not held here` }); return }
      const step = this.chunkBytes
      let seq = 0
      for (let off = 0; off < bytes.byteLength || seq === 0; off += step) {
        const end = Math.min(bytes.byteLength, off + step)
        this.conn.send({ t: 'chunk', req: m.req, seq: seq++, data: bytes.subarray(off, end), last: end >= bytes.byteLength, size: bytes.byteLength })
        this.bytesOut += end - off
        if (this.conn.bufferedAmount > 8 * step) await drain(this.conn, 2 * step)
      }
    } catch (e) {
      try { this.conn.send({ t: 'serveFail', req: m.req, reason: `serving object ${m.id} failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 300) }) } catch { /* the connection is down: the coordinator sees that */ }
    }
  }

  /**
   * Keeps bytes here, and answers any pull of ours still waiting for them. `primary`: made here (a result,
   * a put), never evicted; otherwise a fetched copy. Throws LimitError when the store has no room.
   */
  hold(id: ObjectId, bytes: Uint8Array, primary: boolean, job: JobId): void {
    this.store.set(id, bytes, primary, job)
    for (const pull of this.pulls.values()) if (pull.id === id && pull.job === job) pull.done.resolve(bytes)
  }

  /** Fetches a copy the coordinator asked this peer to keep for good (a put with `replicate`). */
  async replicate(info: ObjectInfo): Promise<void> {
    if (!info.job) return
    try {
      const bytes = await this.fetch(info, info.job)
      this.store.set(info.id, bytes, true, info.job) // not a cache entry: never evicted
      this.conn.send({ t: 'held', ids: [info.id] })
    } catch { /* the object went away meanwhile: nothing to keep */ }
  }

  /** Keeps a fetched copy, tells the coordinator (later readers may fetch it from here), and answers the pull. */
  private keepCopy(pull: Pull, bytes: Uint8Array): void {
    try { this.store.set(pull.id, bytes, false, pull.job) } catch (e) { pull.done.reject(e); return }
    this.conn.send({ t: 'held', ids: [pull.id] })
    pull.done.resolve(bytes)
  }

  /** This side let an object go: forget what it knew of it (its bytes stay if it holds them for others). */
  forget(id: ObjectId, job: JobId): void { this.infos.delete(keyOf(job, id)); this.ownerJob.delete(id) }

  /** The job an object known or held here belongs to. */
  ownerOf(id: ObjectId): JobId | undefined { return this.store.jobOf(id) ?? this.ownerJob.get(id) }

  /** An object was freed: forget it. */
  drop(id: ObjectId): void {
    const job = this.ownerJob.get(id)
    if (job !== undefined) this.forget(id, job)
    this.store.delete(id)
    this.data?.forget(id)
  }

  /** The coordinator refused this peer for good: nothing awaited will come. */
  failAll(err: Error): void {
    for (const d of this.waiting.values()) d.reject(err)
    this.waiting.clear()
    for (const p of this.pulls.values()) p.done.reject(err)
  }

  /** After a reconnect: ask again for everything still awaited. */
  resend(): void {
    for (const key of this.waiting.keys()) {
      const cut = key.indexOf(' ')
      this.subscribe(key.slice(0, cut), [key.slice(cut + 1)])
    }
    for (const [req, pull] of this.pulls) {
      pull.chunks = []
      pull.got = 0
      this.conn.send({ t: 'pull', req, id: pull.id, job: pull.job })
    }
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total)
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.byteLength }
  return out
}

/** Browser WebSockets have no drain event, so backpressure polls bufferedAmount. */
async function drain(conn: ControlConnection, below: number): Promise<void> {
  while (conn.bufferedAmount > below) await new Promise((r) => setTimeout(r, 2))
}
