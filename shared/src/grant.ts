/**
 * A grant lets one peer read one object from one holder, directly. The coordinator
 * signs it with the holder's session key (HMAC-SHA256), which only the coordinator
 * and that holder know; the holder checks it before serving a byte.
 */
import type { JobId, ObjectId, PeerId } from './ids.js'
import { hmacSha256Hex } from './hash.js'

export interface Grant {
  obj: ObjectId
  job: JobId
  /** The peer allowed to read. */
  to: PeerId
  /** The holder it is for. */
  holder: PeerId
  /** Expiry, ms since the epoch. */
  exp: number
  /** Hex HMAC-SHA256 over grantPayload(), keyed with the holder's session key. */
  sig: string
}

export function grantPayload(g: Omit<Grant, 'sig'>): string {
  return `colony-grant-v1|${g.obj}|${g.job}|${g.to}|${g.holder}|${g.exp}`
}

/** HMAC-SHA256, hex; the same in Node and browsers, secure context or not (see hash.ts). */
export async function hmacHex(key: Uint8Array, text: string): Promise<string> {
  return hmacSha256Hex(key, text)
}

/** True if `g` is a grant, signed with `key`, for `obj` to `to` from `holder`, and not expired. Synchronous; never throws. */
export function verifyGrantSync(g: Grant, key: Uint8Array, expect: { obj: ObjectId; to: PeerId; holder: PeerId }, now = Date.now()): boolean {
  if (!g || typeof g !== 'object' || typeof g.sig !== 'string') return false
  if (g.obj !== expect.obj || g.to !== expect.to || g.holder !== expect.holder || !(g.exp >= now)) return false
  let want: string
  try { want = hmacSha256Hex(key, grantPayload(g)) } catch { return false }
  if (want.length !== g.sig.length) return false
  let diff = 0
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ g.sig.charCodeAt(i)
  return diff === 0
}

/** verifyGrantSync, for callers that await it. */
export async function verifyGrant(g: Grant, key: Uint8Array, expect: { obj: ObjectId; to: PeerId; holder: PeerId }, now = Date.now()): Promise<boolean> {
  return verifyGrantSync(g, key, expect, now)
}
