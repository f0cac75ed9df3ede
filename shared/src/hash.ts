/**
 * SHA-256 and HMAC-SHA256 that work in every context a peer runs in: Node, and browser
 * pages too when they are not a secure context (plain HTTP on a LAN address), where there
 * is no `crypto.subtle`. In Node, node:crypto (hardware SHA, about ten times faster);
 * elsewhere @noble/hashes, which is synchronous and incremental, unlike WebCrypto.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { hmac } from '@noble/hashes/hmac.js'
import { bytesToHex } from '@noble/hashes/utils.js'

/** A SHA-256 fed piece by piece, as an object arrives. */
export interface StreamingHash { update(b: Uint8Array): void; digest(): string }

interface NodeHash { update(b: Uint8Array | string): NodeHash; digest(enc: 'hex'): string }
interface NodeCrypto { createHash(alg: 'sha256'): NodeHash; createHmac(alg: 'sha256', key: Uint8Array): NodeHash }

/** node:crypto when this runs in Node, looked up at run time so that page bundles leave it out. */
const nodeCrypto: NodeCrypto | undefined = (() => {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
    const c = proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined
    return typeof c?.createHash === 'function' ? c : undefined
  } catch { return undefined }
})()

/** The slice sha256Hex hashes between yields, where it hashes in JavaScript. */
const SLICE = 4 << 20

/** SHA-256 with @noble/hashes only: what a browser uses. */
export function nobleSha256Stream(): StreamingHash {
  const h = sha256.create()
  return { update: (b) => { h.update(b) }, digest: () => bytesToHex(h.digest()) }
}

/** A streaming SHA-256: node:crypto in Node, @noble/hashes elsewhere. */
export function sha256Stream(): StreamingHash {
  if (!nodeCrypto) return nobleSha256Stream()
  const h = nodeCrypto.createHash('sha256')
  return { update: (b) => { h.update(b) }, digest: () => h.digest('hex') }
}

/** SHA-256 of bytes, hex, computed now. */
export function sha256HexSync(bytes: Uint8Array): string {
  return nodeCrypto ? nodeCrypto.createHash('sha256').update(bytes).digest('hex') : bytesToHex(sha256(bytes))
}

/**
 * SHA-256 of bytes, hex: how objects are checked after a transfer. Where there is no
 * node:crypto, WebCrypto is the faster path (native, and off the page's thread) when the
 * page has it; without it (an insecure context), or if it refuses the bytes, @noble/hashes.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  if (nodeCrypto) return sha256HexSync(bytes)
  const subtle = (globalThis as { crypto?: { subtle?: SubtleCrypto } }).crypto?.subtle
  if (subtle) {
    try { return bytesToHex(new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))) } catch { /* e.g. a SharedArrayBuffer view: hash it here */ }
  }
  if (bytes.byteLength <= SLICE) return bytesToHex(sha256(bytes))
  // About 100 MB/s: in slices, so that a page stays responsive while a large object is hashed.
  const h = sha256.create()
  for (let off = 0; off < bytes.byteLength; off += SLICE) {
    if (off > 0) await new Promise((r) => setTimeout(r, 0))
    h.update(bytes.subarray(off, off + SLICE))
  }
  return bytesToHex(h.digest())
}

/** HMAC-SHA256 of `text` (UTF-8) keyed with `key`, hex. Synchronous, in any context. */
export function hmacSha256Hex(key: Uint8Array, text: string): string {
  if (nodeCrypto) return nodeCrypto.createHmac('sha256', key).update(text).digest('hex')
  return bytesToHex(hmac(sha256, key, new TextEncoder().encode(text)))
}
