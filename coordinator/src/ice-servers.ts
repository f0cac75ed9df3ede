/**
 * The STUN/TURN servers each peer gets in its welcome. TURN relays bytes for anyone who
 * holds its credentials, so a volunteer never gets one password shared by the whole grid:
 * with a secret shared with coturn (`use-auth-secret`, its "TURN REST API"), each peer gets a
 * username of its own that carries an expiry, and a password that is an HMAC of it. coturn
 * checks both without asking the coordinator; a peer gets fresh ones on every (re)connect.
 */
import { createHmac } from 'node:crypto'

export interface IceServer { urls: string | string[]; username?: string; credential?: string }

export interface TurnSecretOptions {
  /** coturn's `static-auth-secret`. */
  secret: string
  /** `turn:host:3478?transport=udp`, `turns:host:5349`, ... */
  urls: string[]
  /** How long credentials stay valid (default a day). */
  ttlSeconds?: number
}

export type IceServersFor = (peerId: string) => IceServer[]

export const DEFAULT_TURN_TTL_S = 86_400

/** coturn's scheme: username `<unix expiry>:<name>`, credential base64(HMAC-SHA1(secret, username)). */
export function turnCredentials(secret: string, name: string, ttlSeconds: number, now = Date.now()): { username: string; credential: string } {
  const username = `${Math.floor(now / 1000) + ttlSeconds}:${name}`
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') }
}

/** Static servers (STUN, or a TURN server with fixed credentials) plus, with a secret, a TURN entry per peer. */
export function iceServersFor(fixed: IceServer[], turn?: TurnSecretOptions): IceServersFor {
  if (!turn) return () => fixed
  if (!turn.secret || turn.urls.length === 0) throw new Error('TURN with a shared secret needs the secret and at least one turn: URL')
  for (const u of turn.urls) if (!/^turns?:/.test(u)) throw new Error(`TURN URLs start with turn: or turns: (got ${u})`)
  const ttl = turn.ttlSeconds ?? DEFAULT_TURN_TTL_S
  // Shorter, and peers would hold expired credentials between renewals; over a week, a revoked volunteer keeps relaying for long.
  if (!Number.isInteger(ttl) || ttl < 10 || ttl > 7 * 86_400) throw new Error(`the TURN credentials' lifetime (COLONY_TURN_TTL_S) must be between 10 s and 7 days (got ${ttl})`)
  return (peerId) => [...fixed, { urls: turn.urls, ...turnCredentials(turn.secret, peerId, ttl) }]
}
