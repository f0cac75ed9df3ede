/**
 * The URL a coordinator tells people and peers to use. Other machines cannot use 127.0.0.1,
 * and behind a TLS proxy the address it listens on is not the one they reach: `publicUrl`
 * says; without it, a coordinator listening on every address offers its first LAN address.
 */
import { networkInterfaces } from 'node:os'

const ANY = new Set(['0.0.0.0', '::', ''])

/** The first non-internal IPv4 address of this machine, if any. */
export function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return undefined
}

const hostPart = (h: string) => (h.includes(':') ? `[${h}]` : h)

export function publicUrlOf(o: { scheme: 'http' | 'https'; hostname: string; port: number; publicUrl?: string }): { publicUrl: string; localUrl: string } {
  const localHost = ANY.has(o.hostname) ? '127.0.0.1' : o.hostname
  const localUrl = `${o.scheme}://${hostPart(localHost)}:${o.port}`
  if (o.publicUrl) {
    let u: URL
    try { u = new URL(o.publicUrl) } catch { throw new Error(`the public URL must be a full URL such as https://grid.example.org (got ${o.publicUrl})`) }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`the public URL must start with http:// or https:// (got ${o.publicUrl})`)
    if (u.search || u.hash) throw new Error(`the public URL takes no query or fragment (got ${o.publicUrl})`)
    return { publicUrl: u.href.replace(/\/$/, ''), localUrl }
  }
  const host = ANY.has(o.hostname) ? lanAddress() ?? '127.0.0.1' : o.hostname
  return { publicUrl: `${o.scheme}://${hostPart(host)}:${o.port}`, localUrl }
}
