import { Redis } from 'ioredis'

/**
 * The coordinators that share one Redis, found by each other: every one (leader or standby)
 * stamps its public URL into one hash each second, and the leader hands the live ones to peers
 * in their welcome, so that a peer knows where to go when its coordinator dies. A URL not
 * stamped for `staleMs` is left out (its process is gone).
 */
export class CoordinatorList {
  private readonly redis: Redis
  private timer?: NodeJS.Timeout
  private known: string[] = []

  constructor(redisUrl: string, private readonly self: string, private readonly key = 'colony:coordinators', private readonly staleMs = 10_000) {
    // Fail fast while Redis is away (the stamp is retried each second); never queue commands.
    this.redis = new Redis(redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    this.redis.on('error', () => { /* the lease and the store say when Redis is away */ })
  }

  async start(): Promise<void> {
    await this.redis.connect().catch(() => {})
    const stamp = async () => {
      try {
        await this.redis.hset(this.key, this.self, Date.now())
        const all = await this.redis.hgetall(this.key)
        const now = Date.now()
        this.known = Object.entries(all).filter(([, at]) => now - Number(at) < this.staleMs).map(([url]) => url).sort()
        const gone = Object.entries(all).filter(([, at]) => now - Number(at) >= this.staleMs * 6).map(([url]) => url)
        if (gone.length) await this.redis.hdel(this.key, ...gone)
      } catch { /* Redis is away: keep the last list */ }
    }
    await stamp()
    this.timer = setInterval(stamp, 1000)
    this.timer.unref()
  }

  /** Every live coordinator's URL, this one (the leader, when it asks) first. */
  urls(): string[] { return [this.self, ...this.known.filter((u) => u !== this.self)] }

  async close(): Promise<void> {
    clearInterval(this.timer)
    try { await this.redis.hdel(this.key, this.self) } catch { /* away */ }
    this.redis.disconnect()
  }
}
