/**
 * The URL a coordinator tells people and peers to use. Other machines cannot use 127.0.0.1,
 * and behind a TLS proxy the address it listens on is not the one they reach: `publicUrl`
 * says; without it, a coordinator listening on every address offers its first LAN address.
 */
import { readFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'

const ANY = new Set(['0.0.0.0', '::', ''])

/**
 * This machine's LAN address: the IPv4 address of the interface its default route leaves by
 * (Linux), not a container bridge or a VPN's; else the first non-internal IPv4 address.
 */
export function lanAddress(): string | undefined {
  const all = networkInterfaces()
  const ipv4 = (name: string) => all[name]?.find((a) => a.family === 'IPv4' && !a.internal)?.address
  try {
    // /proc/net/route: Iface, Destination (hex), ...; the default route's destination is 00000000.
    const line = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).find((f) => f[1] === '00000000')
    const viaDefault = line && ipv4(line[0])
    if (viaDefault) return viaDefault
  } catch { /* not Linux */ }
  for (const name of Object.keys(all)) { const a = ipv4(name); if (a) return a }
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
    if (u.search || u.hash || u.pathname !== '/') throw new Error(`the public URL is a scheme, a host and maybe a port, with no path (got ${o.publicUrl}): the coordinator's pages and API live at the root of it`)
    return { publicUrl: u.href.replace(/\/$/, ''), localUrl }
  }
  const host = ANY.has(o.hostname) ? lanAddress() ?? '127.0.0.1' : o.hostname
  return { publicUrl: `${o.scheme}://${hostPart(host)}:${o.port}`, localUrl }
}
