/**
 * The HTTP access log: one line per request, with its method, path, status, duration and the
 * address it came from. The path goes without its query string (page cursors make it long;
 * tokens never travel there, only in Authorization, which is never logged). Probes, scrapes and
 * static files go at debug, the API at info. A WebSocket's upgrade is logged at debug, and its
 * frames never: they do not pass through Hono.
 * For a stream (server-sent events) the duration is the time to its first byte.
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { Logger } from './logger.js'
import { remoteAddress } from './request-origin.js'

/** Paths asked often by machines (probes, scrapers, page assets): debug, not info. */
const NOISY = /^\/(metrics|healthz|readyz|ws|favicon\.ico)$|^\/assets\/|\.(js|css|map|png|svg|wasm|woff2?)$/

export function accessLog(logger: Logger, trustProxy: boolean): MiddlewareHandler {
  return async (c: Context, next) => {
    const start = performance.now()
    let failed = false
    try { await next() } catch (e) { failed = true; throw e } finally {
      const path = c.req.path
      const status = failed ? 500 : c.res.status
      // A server error is worth a look whatever the path (its stack is logged by app.onError); a 503 is a standby's or /readyz's answer.
      const level = status >= 500 && status !== 503 ? 'warn' : NOISY.test(path) ? 'debug' : 'info'
      if (logger.isLevelEnabled(level)) {
        const ms = Math.round((performance.now() - start) * 10) / 10
        const method = c.req.method
        logger[level]({ http: { method, path, status, ms, remote: remoteAddress(c, trustProxy) } }, `${method} ${path} ${status} ${ms} ms`)
      }
    }
  }
}
