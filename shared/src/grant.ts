/**
 * A grant lets one peer read one object from one holder, directly. The coordinator
 * signs it with the holder's session key (HMAC-SHA256), which only the coordinator
 * and that holder know; the holder checks it before serving a byte.
 */
import type { JobId, ObjectId, PeerId } from './ids.js'

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

const hex = (b: ArrayBuffer): string => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('')

/** HMAC-SHA256 with WebCrypto, the same in Node and browsers. */
export async function hmacHex(key: Uint8Array, text: string): Promise<string> {
  const k = await globalThis.crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return hex(await globalThis.crypto.subtle.sign('HMAC', k, new TextEncoder().encode(text)))
}

/** True if `g` is a grant, signed with `key`, for `obj` to `to` from `holder`, and not expired. */
export async function verifyGrant(g: Grant, key: Uint8Array, expect: { obj: ObjectId; to: PeerId; holder: PeerId }, now = Date.now()): Promise<boolean> {
  if (g.obj !== expect.obj || g.to !== expect.to || g.holder !== expect.holder || g.exp < now) return false
  const want = await hmacHex(key, grantPayload(g))
  if (want.length !== g.sig.length) return false
  let diff = 0
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ g.sig.charCodeAt(i)
  return diff === 0
}

/** SHA-256 of bytes, hex: how objects are checked after a transfer. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return hex(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
}
