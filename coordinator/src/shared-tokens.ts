import { Redis } from 'ioredis'
import type { Tokens } from './tokens.js'

/**
 * The grid's three main tokens, kept in the Redis the coordinators share, so that a standby
 * accepts the peers and drivers of the leader it replaces without being told the tokens. The first
 * coordinator writes its own (SET NX); the others take those, unless the environment or the
 * caller names tokens (then those win, and a mismatch is reported). Anyone who can read this
 * Redis can read the tokens, as they can every table of the grid: keep it private.
 */
export async function tokensInRedis(redisUrl: string, key: string, given: Partial<Tokens>): Promise<{ tokens: Partial<Tokens>; save(t: Tokens): Promise<string | undefined> }> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const raw = await redis.get(key)
    const stored = raw ? JSON.parse(raw) as Partial<Tokens> : {}
    return {
      tokens: { submit: given.submit ?? stored.submit, join: given.join ?? stored.join, trusted: given.trusted ?? stored.trusted },
      async save(t: Tokens) {
        try {
          await redis.set(key, JSON.stringify(t), 'NX')
          const now = JSON.parse(await redis.get(key) ?? '{}') as Partial<Tokens>
          if (now.submit !== t.submit || now.join !== t.join || now.trusted !== t.trusted) {
            return 'this coordinator\'s tokens differ from those of the grid it shares Redis with (COLONY_*_TOKEN): peers of one will be refused by the other'
          }
        } finally { redis.disconnect() }
      },
    }
  } catch (e) {
    redis.disconnect()
    throw new Error(`cannot reach the Redis store at ${redisUrl}: ${(e as Error).message}. Is redis-server running there?`)
  }
}
