import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { timingSafeEqual } from 'node:crypto'
import { newToken } from '@colony/shared'

export interface Tokens { submit: string; join: string }

/**
 * Submit tokens (drivers) and join tokens (workers) are separate. They come from
 * the environment, or from `<dataDir>/tokens.json`, or are made once and saved
 * there, so a restarted coordinator accepts the peers that were already joined.
 */
export function resolveTokens(dataDir: string | undefined, given: Partial<Tokens> = {}): Tokens {
  const env = { submit: given.submit ?? process.env.COLONY_SUBMIT_TOKEN, join: given.join ?? process.env.COLONY_JOIN_TOKEN }
  let saved: Partial<Tokens> = {}
  const file = dataDir ? join(dataDir, 'tokens.json') : undefined
  if (file && existsSync(file)) saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<Tokens>
  const tokens = { submit: env.submit || saved.submit || newToken(), join: env.join || saved.join || newToken() }
  if (tokens.submit === tokens.join) throw new Error('the submit token and the join token must differ')
  if (file && (saved.submit !== tokens.submit || saved.join !== tokens.join)) {
    mkdirSync(dataDir!, { recursive: true })
    writeFileSync(file, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 })
  }
  return tokens
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a), y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** What a token lets its holder do, or undefined for a bad token. */
export function roleOf(tokens: Tokens, token: string | undefined): 'driver' | 'worker' | undefined {
  if (!token) return undefined
  if (same(token, tokens.submit)) return 'driver'
  if (same(token, tokens.join)) return 'worker'
  return undefined
}
