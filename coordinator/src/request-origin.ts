/** Who sent a request: the token it carries, and the address it comes from. */
import type { Context } from 'hono'
import { isIP } from 'node:net'

/** The token in `Authorization: Bearer <token>`; nothing else (a token in the URL would end up in logs). */
export function bearer(c: Context): string | undefined {
  const h = c.req.header('authorization')
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined
}

/**
 * Where a request (or a WebSocket upgrade) comes from. Behind a reverse proxy every socket is the
 * proxy's, and volunteers would share one origin (and one reputation): with `trustProxy`, the
 * address the proxy appended last to X-Forwarded-For. Only from a proxy on this machine (a
 * loopback socket): anyone reaching the coordinator directly could write the header themselves.
 */
export function remoteAddress(c: Context, trustProxy: boolean): string | undefined {
  const socket = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress
  if (!trustProxy || !socket || !isLoopback(socket)) return socket
  const forwarded = c.req.header('x-forwarded-for')?.split(',').map((a) => a.trim()).at(-1)
  return forwarded && isIP(forwarded) ? forwarded : socket
}

const isLoopback = (a: string) => a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.')
