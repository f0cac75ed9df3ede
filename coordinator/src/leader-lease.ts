/**
 * A leader lease for hot-standby coordinators that share one Redis (one control store).
 *
 * Why (ray-project/ray #22164): Ray's GCS keeps its tables in Redis but relies on there being one
 * GCS at a time, with nothing in Redis to enforce it. With a shared store, two coordinators that
 * both believe they lead would each schedule the same tasks and overwrite each other's rows (split
 * brain). So exactly one coordinator may serve, and it must stop by itself, in time, once it can no
 * longer prove that it is the one: a leader cut off from Redis cannot be told to stop.
 *
 * Design:
 *  - acquire: `SET key id NX PX ttl`. While someone else holds it, try again every ttl/3, or just
 *    after its lease runs out if that is sooner (PTTL): a holder killed with -9 never releases, and
 *    its lease expires at most ttl after it last renewed it, so a standby takes over within ttl.
 *  - renew every ttl/3 with a compare-and-renew script: PEXPIRE only while the value is still our id,
 *    so a leader never extends a lease that expired and was taken by another.
 *  - the deadline is kept on a local timer, counted from when the SET or renewal was *sent* (Redis
 *    starts its own count later, when it runs the command): if no renewal succeeds by then (Redis
 *    down, unreachable or frozen, this process starved) the lease is lost, and 'lost' is emitted once,
 *    a small guard before Redis could let another take it. A renewal that finds another holder loses
 *    it at once. On 'lost' the caller must stop serving at once (and may acquire() again).
 *  - release: a compare-and-delete script, so a late release never deletes a successor's lease.
 * The holder's id is its value (e.g. its public URL), so a standby can say who leads: holder().
 */
import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'

// SET NX, or take over a lease that is ours already (a renewal's answer was lost; the same id restarted).
// Else how long the holder's lease has left (PTTL: -2 gone already, -1 no expiry, never set by a lease).
const ACQUIRE = `if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') or redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, 0} end
return {0, redis.call('PTTL', KEYS[1])}`
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

export interface LeaderLeaseOptions {
  /** The Redis key of the lease; every candidate for one role uses the same. */
  key: string
  /** How long a lease lasts without renewal (ms). */
  ttlMs?: number
  /** This candidate's id, stored as the value (e.g. its public URL); unique among candidates. */
  id?: string
  log?: (msg: string) => void
  redis?: RedisOptions
}

export class LeaderLease extends EventEmitter {
  readonly key: string
  readonly ttlMs: number
  readonly id: string
  readonly redis: Redis
  private readonly log: (msg: string) => void
  private held = false
  private renewTimer?: ReturnType<typeof setInterval>
  private lossTimer?: ReturnType<typeof setTimeout>
  private renewing = false
  /** Counts holds, so that the answer to a renewal sent in an earlier one is ignored. */
  private term = 0

  constructor(redisUrl: string, o: LeaderLeaseOptions) {
    super()
    this.key = o.key
    this.ttlMs = o.ttlMs ?? 3000
    this.id = o.id ?? randomUUID()
    this.log = o.log ?? (() => {})
    const step = Math.max(1, Math.floor(this.ttlMs / 3))
    this.redis = new Redis(redisUrl, {
      // A command never outlives a renewal period, nor waits for Redis to come back.
      maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, commandTimeout: step, connectTimeout: step,
      retryStrategy: (n) => Math.min(50 * n, step),
      ...o.redis,
    })
    this.redis.on('error', () => {})
  }

  /** Whether this process holds the lease now (as far as its local deadline says). */
  get isLeader(): boolean { return this.held }

  /**
   * Resolves once this process holds the lease; rejects if `signal` aborts first. While another holds
   * it, tries again every ttl/3, or just after it expires if that comes sooner.
   */
  async acquire(signal?: AbortSignal): Promise<void> {
    const step = this.ttlMs / 3
    for (;;) {
      signal?.throwIfAborted()
      if (this.held) return
      let wait = step
      const sent = performance.now()
      try {
        const [ok, left] = await this.redis.eval(ACQUIRE, 1, this.key, this.id, this.ttlMs) as [number, number]
        if (ok === 1) {
          this.hold(sent)
          if (signal?.aborted) { await this.release(); throw signal.reason }
          return
        }
        wait = left === -2 ? 0 : left > 0 ? Math.min(step, left + 2) : step
      } catch (e) {
        if (signal?.aborted) throw signal.reason
        this.log(`leader lease ${this.key}: ${(e as Error).message}; trying again`)
      }
      await sleep(wait, signal)
    }
  }

  /** The id of whoever holds the lease now, or null. */
  async holder(): Promise<string | null> { return this.redis.get(this.key) }

  /** Lets go of the lease (if it is still ours) without emitting 'lost'. */
  async release(): Promise<void> {
    const was = this.held
    this.stop()
    if (!was) return
    try { await this.redis.eval(RELEASE, 1, this.key, this.id) } catch (e) {
      this.log(`leader lease ${this.key}: release failed (${(e as Error).message}); it expires within ${this.ttlMs} ms`)
    }
  }

  /** Releases the lease and closes the connection. */
  async close(): Promise<void> {
    await this.release()
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect())
    else this.redis.disconnect()
  }

  private hold(sent: number): void {
    this.held = true
    this.term++
    this.extend(sent)
    this.renewTimer = setInterval(() => { void this.renew() }, this.ttlMs / 3)
  }

  /** The local deadline: `ttl` after the command that set it was sent, less a guard for timer lateness. */
  private extend(sent: number): void {
    clearTimeout(this.lossTimer)
    const guard = Math.min(100, this.ttlMs / 10)
    this.lossTimer = setTimeout(() => this.lose('not renewed before it expired'), Math.max(0, sent + this.ttlMs - guard - performance.now()))
  }

  private async renew(): Promise<void> {
    if (this.renewing || !this.held) return
    this.renewing = true
    const sent = performance.now(), term = this.term
    try {
      const ok = (await this.redis.eval(RENEW, 1, this.key, this.id, this.ttlMs)) === 1
      if (!this.held || term !== this.term) return
      if (ok) this.extend(sent)
      else this.lose('another holds it')
    } catch (e) {
      this.log(`leader lease ${this.key}: renewal failed: ${(e as Error).message}`)
    } finally { this.renewing = false }
  }

  private stop(): void {
    this.held = false
    clearInterval(this.renewTimer)
    clearTimeout(this.lossTimer)
    this.renewTimer = this.lossTimer = undefined
  }

  private lose(why: string): void {
    if (!this.held) return
    this.stop()
    this.log(`leader lease ${this.key} lost: ${why}`)
    this.emit('lost', why)
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = () => { clearTimeout(t); reject(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
