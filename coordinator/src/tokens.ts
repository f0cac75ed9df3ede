import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createHash, timingSafeEqual } from 'node:crypto'
import { newToken } from '@colony-grid/shared'

/**
 * The three tokens `colony start` prints: the operator's submit token, the join token (anyone may
 * volunteer with it), and the trusted join token (for the operator's own machines: their peers may
 * run what no quorum can check, such as a job's main).
 */
export interface Tokens { submit: string; join: string; trusted: string }

export type TokenRole = 'submit' | 'join'

/** A token as the API shows it: never the secret, only its id. */
export interface TokenInfo { id: string; role: TokenRole; label: string; createdAt: number; revoked: boolean; operator: boolean; trusted?: boolean }

/**
 * What a good token lets its holder be. `operator`: the first submit token, which may see every job
 * and manage tokens. `trusted`: a trusted join token, whose workers may run a job's main.
 */
export interface TokenGrant { id: string; role: 'driver' | 'worker'; operator: boolean; trusted: boolean }

interface Saved extends Partial<Tokens> { more?: (TokenInfo & { token: string })[]; joinRevoked?: boolean; trustedRevoked?: boolean }

const idOf = (token: string) => `k_${createHash('sha256').update(token).digest('hex').slice(0, 12)}`

function same(a: string, b: string): boolean {
  const x = Buffer.from(a), y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Submit tokens (drivers) and join tokens (workers) are separate, and a join token is trusted or
 * not. The first three come from the environment (COLONY_SUBMIT_TOKEN, COLONY_JOIN_TOKEN,
 * COLONY_TRUSTED_JOIN_TOKEN), or from `<dataDir>/tokens.json`, or are made once and saved there,
 * so a restarted coordinator accepts the peers that were already joined. The operator can make
 * more (one per user, say: each sees only its own jobs; trusted join tokens for its own machines)
 * and revoke them.
 */
export class TokenRegistry {
  readonly main: Tokens
  private readonly all: (TokenInfo & { token: string })[]

  constructor(private readonly dataDir: string | undefined, given: Partial<Tokens> = {}) {
    const env = {
      submit: given.submit ?? process.env.COLONY_SUBMIT_TOKEN, join: given.join ?? process.env.COLONY_JOIN_TOKEN,
      trusted: given.trusted ?? process.env.COLONY_TRUSTED_JOIN_TOKEN,
    }
    const file = this.file()
    const saved: Saved = file && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as Saved : {}
    this.main = {
      submit: env.submit || saved.submit || newToken(), join: env.join || saved.join || newToken(), trusted: env.trusted || saved.trusted || newToken(),
    }
    const { submit, join, trusted } = this.main
    if (submit === join || submit === trusted || join === trusted) throw new Error('the submit token, the join token and the trusted join token must all differ')
    const first = (token: string, role: TokenRole, label: string, operator: boolean, isTrusted = false) =>
      ({ token, id: idOf(token), role, label, createdAt: 0, revoked: false, operator, ...(isTrusted ? { trusted: true } : {}) })
    this.all = [
      first(submit, 'submit', 'operator', true), first(join, 'join', 'join', false), first(trusted, 'join', 'trusted join', false, true),
      ...(saved.more ?? []).map((t) => ({ ...t, operator: false })),
    ]
    // The first join tokens can be revoked too (hand out per-machine ones instead); that must outlive a restart.
    if (saved.joinRevoked && saved.join === join) this.all[1].revoked = true
    if (saved.trustedRevoked && saved.trusted === trusted) this.all[2].revoked = true
    if (saved.submit !== submit || saved.join !== join || saved.trusted !== trusted) this.save()
  }

  private file(): string | undefined { return this.dataDir ? join(this.dataDir, 'tokens.json') : undefined }

  private save(): void {
    const file = this.file()
    if (!file) return
    mkdirSync(this.dataDir!, { recursive: true })
    const saved: Saved = {
      ...this.main, joinRevoked: this.all[1].revoked, trustedRevoked: this.all[2].revoked,
      more: this.all.slice(3).map(({ operator: _, ...t }) => ({ ...t, operator: false })),
    }
    writeFileSync(file, JSON.stringify(saved, null, 2) + '\n', { mode: 0o600 })
  }

  /** What `token` lets its holder do, or undefined for a bad or revoked one. */
  check(token: string | undefined): TokenGrant | undefined {
    if (!token) return undefined
    for (const t of this.all) {
      if (!t.revoked && same(token, t.token)) return { id: t.id, role: t.role === 'submit' ? 'driver' : 'worker', operator: t.operator, trusted: t.role === 'join' && !!t.trusted }
    }
    return undefined
  }

  /** `trusted`: a join token for the operator's own machines (see Tokens). */
  create(role: TokenRole, label: string, trusted = false): { token: string; info: TokenInfo } {
    const token = newToken()
    const t = { token, id: idOf(token), role, label: label.slice(0, 200), createdAt: Date.now(), revoked: false, operator: false, ...(trusted && role === 'join' ? { trusted: true } : {}) }
    this.all.push(t)
    this.save()
    return { token, info: this.info(t) }
  }

  /** Revokes a token (not the operator's): its holder is refused from now on. */
  revoke(id: string): TokenInfo | undefined {
    const t = this.all.find((x) => x.id === id)
    if (!t || t.operator) return undefined
    t.revoked = true
    this.save()
    return this.info(t)
  }

  list(): TokenInfo[] { return this.all.map((t) => this.info(t)) }

  private info({ token: _, ...t }: TokenInfo & { token: string }): TokenInfo { return t }
}
