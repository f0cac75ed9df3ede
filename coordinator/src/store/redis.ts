import { randomUUID } from 'node:crypto'
import { Redis, type ChainableCommander, type RedisOptions } from 'ioredis'
import { decodeFrame, encodeFrame, returnId, type FnDef, type SerializedError, type TaskSpec, type TaskState } from '@colony-grid/shared'
import type { ActorRow, ControlStore, JobRow, LocationRow, ObjectRow, OriginRow, PeerRow, StateInfo, StoreSnapshot, TaskRow } from './types.js'

/*
 * Key layout (P = the prefix, `colony:` by default). Values are msgpack, with the codec sqlite.ts uses.
 *   P jobs, P actors, P peers, P origins, P objects   hash: id -> the row
 *   P tasks:spec    hash: id -> [job, spec, main]       written once (HSETNX): the task exists iff it is here
 *   P tasks:state   hash: id -> [state, attempts]
 *   P tasks:error   hash: id -> error                   (absent: none)
 *   P tasks:result  hash: id -> [size, inline]          a finished task's small result; load derives returnId(id)
 *   P tasks:order:<job>  list of its task ids, in submission order   pushed only when the spec was new, so never twice
 *   P fns           hash: job NUL fnId -> [job, def]    first write wins, as in SQLite
 *   P locations     set of the objects that have locations; P locations:<object>: set of peers
 *   P bundles       hash: hash -> code (HSETNX);  P bundles:owners: set of "hash owner"
 *   P states        hash: owner NUL key -> the value's bytes, as they are
 *   P states:at     sorted set: owner NUL key, scored by when it was written   (retention's order)
 *   P states:names  sorted set: owner NUL key, all scored 0                    (an owner's prefix, by ZRANGEBYLEX)
 *   P commit        the id of the last batch applied (see commit())
 * Every key is a known name, so nothing needs KEYS or SCAN. For Redis Cluster, make the prefix a hash tag
 * (`{colony}:`) so that one MULTI's keys share a slot.
 */
const pack = (v: unknown): Buffer => Buffer.from(encodeFrame([v]))
const unpack = <T>(b: Uint8Array): T => decodeFrame(b)[0] as T
const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)
const NONE = '' // in a script's ARGV: delete the field (a msgpack value is never empty)

// put: the spec only if new (insert-or-ignore), and with it the state, error and place in the order.
const PUT_TASK = `if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
redis.call('RPUSH', KEYS[4], ARGV[1])
return 1`
// setState / finish: only for a task that exists (SQLite's UPDATE ... WHERE id = ?); ARGV[i] goes to KEYS[i].
const UPDATE_TASK = `if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 2, #KEYS do
  if ARGV[i] == '' then redis.call('HDEL', KEYS[i], ARGV[1]) else redis.call('HSET', KEYS[i], ARGV[1], ARGV[i]) end
end
return 1`
// locations.remove: and drop the object from the index once its last peer is gone.
const REMOVE_LOCATION = `redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1`

// Named state: its three keys (KEYS: P states, P states:at, P states:names) change together, in a script
// rather than a MULTI, which would share the connection's WATCH with a fenced commit.
const PUT_STATE = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1`
const GET_STATE = `local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
return {v, redis.call('ZSCORE', KEYS[2], ARGV[1])}`
const REMOVE_STATE = `redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`
// ARGV: the lex range of an owner's prefix. Flat: member, size, updatedAt, member, ...
const LIST_STATES = `local out = {}
for _, m in ipairs(redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], ARGV[2])) do
  out[#out + 1] = m
  out[#out + 1] = redis.call('HSTRLEN', KEYS[1], m)
  out[#out + 1] = redis.call('ZSCORE', KEYS[2], m)
end
return out`
// At most ARGV[2] of the rows written before ARGV[1]; returns how many went.
const EXPIRE_STATES = `local m = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #m > 0 then
  redis.call('HDEL', KEYS[1], unpack(m))
  redis.call('ZREM', KEYS[2], unpack(m))
  redis.call('ZREM', KEYS[3], unpack(m))
end
return #m`
const EXPIRE_STEP = 1000

type Write = (m: ChainableCommander) => void

/**
 * The control store in Redis (one server, or a primary with AOF `appendfsync always` for durability:
 * a commit resolves once Redis has answered EXEC, so it is as durable as that server's AOF setting).
 * Writes are queued synchronously; `commit()` sends them all in one MULTI/EXEC.
 */
export class RedisStore implements ControlStore {
  readonly kind = 'redis' as const
  readonly redis: Redis
  private readonly k
  private queue: Write[] = []
  /** The batch whose EXEC was sent but not answered: it may or may not have been applied. */
  private unsure?: { id: string; count: number }
  private readonly instance = randomUUID()
  private seq = 0
  private tail: Promise<void> = Promise.resolve()
  private waiting?: Promise<void>
  private closed = false

  constructor(url: string, readonly prefix = 'colony:', options: RedisOptions = {}) {
    this.redis = new Redis(url, {
      // Fail fast while disconnected: a command waits at most for the next reconnect attempt, and one
      // in flight when the connection drops is rejected, never sent again behind our back.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (n) => Math.min(50 * n, 1000), // but keep reconnecting in the background
      connectTimeout: 5000,
      commandTimeout: 10_000,
      ...options,
    })
    // Failures surface as rejected commits and loads; without a listener ioredis prints each one.
    this.redis.on('error', () => {})
    const key = (name: string) => prefix + name
    this.k = {
      jobs: key('jobs'), actors: key('actors'), peers: key('peers'), origins: key('origins'), objects: key('objects'),
      spec: key('tasks:spec'), state: key('tasks:state'), error: key('tasks:error'), result: key('tasks:result'), order: (job: string) => key(`tasks:order:${job}`),
      fns: key('fns'), locations: key('locations'), location: (object: string) => key(`locations:${object}`),
      bundles: key('bundles'), owners: key('bundles:owners'), commit: key('commit'),
      states: [key('states'), key('states:at'), key('states:names')] as const,
    }
  }

  private write(w: Write): void { this.queue.push(w) }

  async load(): Promise<StoreSnapshot> {
    const k = this.k
    const res = await this.redis.multi()
      .hgetallBuffer(k.jobs).hgetallBuffer(k.spec).hgetallBuffer(k.state).hgetallBuffer(k.error)
      .hgetallBuffer(k.result).hgetallBuffer(k.objects).hgetallBuffer(k.actors).hgetallBuffer(k.peers).hgetallBuffer(k.origins)
      .hgetallBuffer(k.fns).smembers(k.locations).hkeys(k.bundles).smembers(k.owners).exec()
    const [jobs, spec, state, error, result, objs, actors, peers, origins, fns, locObjects, bundles, owners] = replies(res) as [
      Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>,
      Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>, Record<string, Buffer>, string[], string[], string[]]
    const jobIds = Object.keys(jobs)
    const order = jobIds.length ? (replies(await jobIds.reduce((p, j) => p.lrange(k.order(j), 0, -1), this.redis.pipeline()).exec()) as string[][]).flat() : []
    const locReplies = locObjects.length ? replies(await locObjects.reduce((p, o) => p.smembers(k.location(o)), this.redis.pipeline()).exec()) as string[][] : []

    const tasks: TaskRow[] = []
    const objects: ObjectRow[] = Object.values(objs).map((b) => unpack<ObjectRow>(b))
    const seen = new Set<string>()
    // The order list has each id once; dedupe anyway, and keep a task that somehow missed it (at the end).
    for (const id of [...order, ...Object.keys(spec)]) {
      if (seen.has(id) || !spec[id]) continue
      seen.add(id)
      const [job, taskSpec, main] = unpack<[string, TaskSpec, boolean]>(spec[id])
      const [st, attempts] = state[id] ? unpack<[TaskState, number]>(state[id]) : ['waiting' as TaskState, 0]
      tasks.push({ id, job, spec: taskSpec, main, state: st, attempts, error: error[id] ? unpack<SerializedError>(error[id]) : undefined })
      if (result[id]) {
        const [size, inline] = unpack<[number, Uint8Array]>(result[id])
        objects.push({ id: returnId(id), job, size, inline })
      }
    }
    const ownersOf = new Map<string, string[]>()
    for (const m of owners) {
      const at = m.indexOf(' '), hash = m.slice(0, at)
      ownersOf.set(hash, [...(ownersOf.get(hash) ?? []), m.slice(at + 1)])
    }
    return {
      jobs: Object.values(jobs).map((b) => unpack<JobRow>(b)),
      tasks,
      objects,
      actors: Object.values(actors).map((b) => unpack<ActorRow>(b)),
      peers: Object.values(peers).map((b) => unpack<PeerRow>(b)),
      origins: Object.values(origins).map((b) => unpack<OriginRow>(b)),
      locations: locObjects.flatMap((object, i) => locReplies[i].map((peer) => ({ object, peer }))),
      fns: Object.values(fns).map((b) => unpack<{ job: string; def: FnDef }>(b)),
      bundles: bundles.map((hash) => ({ hash, owners: ownersOf.get(hash) ?? [] })),
    }
  }

  readonly jobs: ControlStore['jobs'] = {
    put: (job) => { const b = pack(job); this.write((m) => m.hset(this.k.jobs, job.id, b)) },
    dropDetails: (job, ids) => {
      const k = this.k
      this.write((m) => {
        for (const part of chunks(ids.tasks)) m.hdel(k.spec, ...part).hdel(k.state, ...part).hdel(k.error, ...part).hdel(k.result, ...part)
        m.del(k.order(job))
        for (const part of chunks(ids.objects)) m.hdel(k.objects, ...part).srem(k.locations, ...part).del(...part.map(k.location))
        for (const part of chunks(ids.actors)) m.hdel(k.actors, ...part)
        for (const part of chunks(ids.fns)) m.hdel(k.fns, ...part.map((id) => `${job}\0${id}`))
      })
    },
    dropRecords: (job, ids) => {
      const k = this.k
      this.write((m) => {
        for (const part of chunks(ids.tasks)) m.hdel(k.spec, ...part).hdel(k.state, ...part).hdel(k.error, ...part).hdel(k.result, ...part)
        // Spent tasks are mostly the oldest, near the list's head, where LREM's scan from the head stops.
        for (const id of ids.tasks) m.lrem(k.order(job), 1, id)
        for (const part of chunks(ids.objects)) m.hdel(k.objects, ...part).srem(k.locations, ...part).del(...part.map(k.location))
      })
    },
    remove: (job) => { this.write((m) => m.hdel(this.k.jobs, job)) },
  }
  readonly tasks: ControlStore['tasks'] = {
    put: (t) => {
      const spec = pack([t.job, t.spec, !!t.main]), state = pack([t.state, t.attempts]), err = t.error ? pack(t.error) : NONE
      const k = this.k
      this.write((m) => m.eval(PUT_TASK, 4, k.spec, k.state, k.error, k.order(t.job), t.id, spec, state, err))
    },
    setState: (id, state, attempts, error) => {
      const s = pack([state, attempts]), err = error ? pack(error) : NONE
      const k = this.k
      this.write((m) => m.eval(UPDATE_TASK, 3, k.spec, k.state, k.error, id, s, err))
    },
    finish: (id, attempts, result) => {
      // The error column is left as it was, as SQLite's UPDATE leaves it.
      const s = pack(['finished', attempts]), r = pack([result.size, result.inline])
      const k = this.k
      this.write((m) => m.eval(UPDATE_TASK, 3, k.spec, k.state, k.result, id, s, r))
    },
  }
  readonly objects = { put: (o: ObjectRow) => { const b = pack(o); this.write((m) => m.hset(this.k.objects, o.id, b)) } }
  readonly actors = { put: (a: ActorRow) => { const b = pack(a); this.write((m) => m.hset(this.k.actors, a.id, b)) } }
  readonly peers = {
    put: (p: PeerRow) => { const b = pack(p); this.write((m) => m.hset(this.k.peers, p.id, b)) },
    remove: (id: string) => { this.write((m) => m.hdel(this.k.peers, id)) },
  }
  readonly origins = {
    put: (o: OriginRow) => {
      const b = pack({ origin: o.origin, reputation: o.reputation, quarantined: o.quarantined })
      this.write((m) => m.hset(this.k.origins, o.origin, b))
    },
    remove: (origin: string) => { this.write((m) => m.hdel(this.k.origins, origin)) },
  }
  readonly locations = {
    put: (l: LocationRow) => { this.write((m) => m.sadd(this.k.locations, l.object).sadd(this.k.location(l.object), l.peer)) },
    remove: (l: LocationRow) => {
      this.write((m) => m.eval(REMOVE_LOCATION, 2, this.k.location(l.object), this.k.locations, l.peer, l.object))
    },
    removeAll: (object: string) => { this.write((m) => m.del(this.k.location(object)).srem(this.k.locations, object)) },
  }
  readonly fns = {
    put: (job: string, def: FnDef) => { const b = pack({ job, def }); this.write((m) => m.hsetnx(this.k.fns, `${job}\0${def.id}`, b)) },
  }
  readonly bundles: ControlStore['bundles'] = {
    put: async (hash, code, owner) => {
      const m = this.redis.multi().hsetnx(this.k.bundles, hash, asBuffer(code))
      if (owner) m.sadd(this.k.owners, `${hash} ${owner}`)
      replies(await m.exec())
    },
    get: async (hash) => (await this.redis.hgetBuffer(this.k.bundles, hash)) ?? undefined,
    remove: async (hash) => {
      // Its owners are members "hash owner" of one set, found by a scan of it (a hash is hex: no glob characters).
      const owners: string[] = []
      let cursor = '0'
      do {
        const [next, found] = await this.redis.sscan(this.k.owners, cursor, 'MATCH', `${hash} *`, 'COUNT', 1000)
        owners.push(...found)
        cursor = next
      } while (cursor !== '0')
      const m = this.redis.multi().hdel(this.k.bundles, hash)
      if (owners.length) m.srem(this.k.owners, ...owners)
      replies(await m.exec())
    },
  }

  readonly states: ControlStore['states'] = {
    put: async (owner, key, value, updatedAt) => {
      await this.redis.eval(PUT_STATE, 3, ...this.k.states, `${owner}\0${key}`, asBuffer(value), updatedAt)
    },
    get: async (owner, key) => {
      const r = await this.redis.callBuffer('EVAL', GET_STATE, 3, ...this.k.states, `${owner}\0${key}`) as [Buffer, Buffer] | null
      return r ? { value: r[0], updatedAt: Number(r[1].toString()) } : undefined
    },
    remove: async (owner, key) => { await this.redis.eval(REMOVE_STATE, 3, ...this.k.states, `${owner}\0${key}`) },
    list: async (owner, prefix) => {
      // Every member of this owner's prefix sorts between "[owner NUL prefix" and it followed by a byte no UTF-8 string has.
      const from = `[${owner}\0${prefix}`
      const flat = await this.redis.eval(LIST_STATES, 3, ...this.k.states, from, Buffer.concat([Buffer.from(from), Buffer.from([0xff])])) as (string | number)[]
      const found: StateInfo[] = []
      for (let i = 0; i < flat.length; i += 3) {
        found.push({ key: String(flat[i]).slice(owner.length + 1), size: Number(flat[i + 1]), updatedAt: Number(flat[i + 2]) })
      }
      return found
    },
    expire: async (before) => {
      let total = 0
      for (;;) {
        const n = await this.redis.eval(EXPIRE_STATES, 3, ...this.k.states, before, EXPIRE_STEP) as number
        total += n
        if (n < EXPIRE_STEP) return total
      }
    },
  }

  /**
   * Group commit, one at a time: a call made while a commit runs waits for it, and the calls made
   * meanwhile share the next one, which takes everything queued by then.
   */
  commit(): Promise<void> {
    if (this.waiting) return this.waiting
    const next = this.tail.then(() => { this.waiting = undefined; return this.send() })
    this.waiting = next
    this.tail = next.catch(() => {})
    return next
  }

  private async send(): Promise<void> {
    if (this.unsure) {
      // The last EXEC went out but its answer did not come back. The batch ends by setting P commit to
      // its id, atomically with its writes, so that key says whether it was applied: send it once only.
      if ((await this.redis.get(this.k.commit)) === this.unsure.id) this.queue.splice(0, this.unsure.count)
      this.unsure = undefined
    }
    const count = this.queue.length
    if (count === 0) return
    for (let attempt = 0; ; attempt++) {
      if (this.fenceBy) {
        // WATCH the lease: if it changes hands before EXEC, Redis applies nothing. The leader's own
        // renewals touch it too; then the batch simply goes again.
        const [, holder] = await Promise.all([this.redis.watch(this.fenceBy.key), this.redis.get(this.fenceBy.key)])
        if (holder !== this.fenceBy.id) {
          await this.redis.unwatch()
          throw new Error(`this coordinator no longer holds the leader lease (${holder ?? 'nobody'} does): it may write nothing more`)
        }
      }
      const id = `${this.instance}:${++this.seq}`
      const m = this.redis.multi()
      for (let i = 0; i < count; i++) this.queue[i](m)
      m.set(this.k.commit, id)
      this.unsure = { id, count }
      // If this rejects (not sent while disconnected, refused, or sent and unanswered), the writes stay
      // queued and `unsure` tells the next commit to find out whether they were applied.
      const res = await m.exec()
      this.unsure = undefined
      if (res === null && this.fenceBy && attempt < 5) continue // the watched lease moved: nothing was applied
      this.queue.splice(0, count)
      replies(res) // a command that failed inside an applied EXEC is a bug: say so, without retrying it
      return
    }
  }

  private fenceBy?: { key: string; id: string }
  /**
   * Commits land only while the lease at `key` holds `id` (leader-lease.ts): a leader that was
   * frozen past its lease, and wakes after a standby took over, cannot overwrite the new leader's rows.
   */
  fence(key: string, id: string): void { this.fenceBy = { key, id } }

  /**
   * Drops the connection and every write not yet committed: a coordinator that lost its lease must
   * write nothing more (its peers replay what it had not acknowledged to the next leader).
   */
  abandon(): void {
    this.closed = true
    this.queue = []
    this.redis.disconnect()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commit().catch(() => {})
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect())
    else this.redis.disconnect()
  }
}

/** Variadic commands in parts of at most 1,000 arguments. */
function* chunks(ids: string[]): Generator<string[]> { for (let i = 0; i < ids.length; i += 1000) yield ids.slice(i, i + 1000) }

/** The replies of a MULTI/EXEC or pipeline; throws the first error among them. */
function replies(res: [Error | null, unknown][] | null): unknown[] {
  if (!res) throw new Error('redis: transaction aborted')
  for (const [e] of res) if (e) throw e
  return res.map(([, v]) => v)
}
