/**
 * Peer identity: who a peer is, and where it joins from.
 *
 * Peer ids are public (/api/peers lists them), so an id alone proves nothing. At a peer's
 * first hello the coordinator makes a random secret, hands it over in `welcome.peerSecret`,
 * and keeps only its hash (here, and in the peer's store row, so it outlives a restart). A
 * hello that names a `peerId` keeps that id only with the matching `peerSecret`; the same
 * secret authenticates the peer's HTTP requests (`Authorization: Peer <peerId>:<peerSecret>`).
 *
 * A peer's *origin* is the token it joined with and the address it joined from (an IPv6
 * address counts by its /64, which one machine can fill): reputation is kept per origin too
 * (reputation.ts), so dropping an id does not wash a quarantine.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { PeerRole } from '@colony-grid/shared'

/** What the coordinator keeps of a peer's identity: never the secret itself. */
export interface Identity { secretHash: string; role: PeerRole; origin: string }

const hashOf = (secret: string): string => createHash('sha256').update(secret).digest('hex')

/** Ids the coordinator remembers (peers that left may come back with their secret); the oldest go first past this. */
const MAX_REMEMBERED = 200_000

export class PeerIdentities {
  private readonly known = new Map<string, Identity>()

  /** `live`: is this id connected now? A connected peer's identity is never the one forgotten. */
  constructor(private readonly live: (id: string) => boolean = () => false) {}

  /** Makes a new secret for `id` and returns it (only its hash is kept). */
  issue(id: string, role: PeerRole, origin: string): string {
    const secret = randomBytes(32).toString('hex')
    this.set(id, { secretHash: hashOf(secret), role, origin })
    return secret
  }

  /** True when `secret` is the one issued to `id` (compared in constant time), for a peer of this role. */
  verify(id: string, secret: string | undefined, role?: PeerRole): boolean {
    const known = this.known.get(id)
    if (!known || !secret || (role && known.role !== role)) return false
    const a = Buffer.from(hashOf(secret), 'hex'), b = Buffer.from(known.secretHash, 'hex')
    return a.length === b.length && timingSafeEqual(a, b)
  }

  get(id: string): Identity | undefined { return this.known.get(id) }

  /** A proven peer joined again, perhaps from somewhere else. */
  moved(id: string, origin: string): void {
    const known = this.known.get(id)
    if (known) this.set(id, { ...known, origin })
  }

  /** As the store kept it, after a restart. */
  restore(id: string, identity: Identity): void { this.set(id, identity) }

  private set(id: string, identity: Identity): void {
    this.known.delete(id)
    this.known.set(id, identity)
    if (this.known.size <= MAX_REMEMBERED) return
    // The oldest of those that left goes (a flood of fresh hellos cannot push out a connected peer's).
    for (const old of this.known.keys()) if (!this.live(old)) { this.known.delete(old); return }
  }
}

/** `Authorization: Peer <peerId>:<peerSecret>`, parsed; undefined for any other header. */
export function peerCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const m = header && /^Peer\s+(p_[0-9a-f]{4,32}):([0-9a-f]{16,128})\s*$/.exec(header)
  return m ? { id: m[1], secret: m[2] } : undefined
}

/** Where a peer joins from, for reputation: its token's id and its address (an IPv6 one by its /64). */
export function originOf(tokenId: string, address: string | undefined): string {
  let addr = (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')
  if (addr.includes(':')) addr = ipv6Prefix64(addr)
  return `${tokenId}@${addr || 'unknown'}`
}

function ipv6Prefix64(addr: string): string {
  const bare = addr.split('%')[0].toLowerCase()
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, undefined]
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`
}
