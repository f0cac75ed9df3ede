/**
 * The pages a coordinator serves (`/join`, `/demo`, later `/ide`), from folders of built
 * files (each package builds its own; the first folder that has a file wins).
 * Cross-origin isolated, so onnxruntime-web may use threads.
 */
import { existsSync, readFileSync } from 'node:fs'
import { extname, join, normalize, sep } from 'node:path'
import type { Hono } from 'hono'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.onnx': 'application/octet-stream', '.bin': 'application/octet-stream', '.map': 'application/json',
}
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
}

/**
 * The join page runs strangers' code in its Web Workers, which get this policy: they may
 * fetch and open sockets only to this coordinator, not to other hosts. (Scripts: the page's own,
 * job bundles as blob: URLs, inline remote functions through eval, and wasm.)
 */
function tabPolicy(host: string): string {
  return [
    "default-src 'self'", "script-src 'self' blob: 'unsafe-eval' 'wasm-unsafe-eval'", "worker-src 'self' blob:",
    `connect-src 'self' blob: data: ws://${host} wss://${host}`, "img-src 'self' data: blob:", "style-src 'self' 'unsafe-inline'",
  ].join('; ')
}

const hostOf = (header: string | undefined) => (header ?? '').replace(/[^\w.:[\]-]/g, '')

export function servePages(app: Hono, roots: readonly string[]): void {
  /** Bound: the files under `roots`, the pages shipped with the coordinator (a path that is not there is not cached). */
  const cache = new Map<string, Uint8Array>()
  const file = (path: string): Uint8Array | undefined => {
    let data = cache.get(path)
    if (!data && existsSync(path)) { data = new Uint8Array(readFileSync(path)); cache.set(path, data) }
    return data
  }
  const send = (rel: string, immutable: boolean, extra: Record<string, string> = {}) => {
    let path = '', data: Uint8Array | undefined
    for (const root of roots) if ((data = file(path = join(root, rel)))) break
    if (!data) return undefined
    return new Response(data as Uint8Array<ArrayBuffer>, {
      headers: {
        'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        ...ISOLATION,
        ...extra,
      },
    })
  }
  // Built assets (hashed names), the ML runtimes' wasm files the build copies under ml/, and the demo's model and digits.
  for (const [prefix, immutable] of [['/assets/*', true], ['/ml/*', true], ['/demo-files/*', false]] as const) {
    app.get(prefix, (c) => {
      const rel = normalize(c.req.path.slice(1))
      if (rel.startsWith('..') || rel.includes(`${sep}..`)) return c.notFound()
      // A worker started from a script URL takes its policy from that script's response, not from its page.
      const worker: Record<string, string> = prefix === '/assets/*' && rel.endsWith('.js') ? { 'content-security-policy': tabPolicy(hostOf(c.req.header('host'))) } : {}
      return send(rel, immutable, worker) ?? c.notFound()
    })
  }
  app.get('/:page{[a-z-]+}', (c) => {
    const page = c.req.param('page')
    return send(`${page}.html`, false, page === 'join' ? { 'content-security-policy': tabPolicy(hostOf(c.req.header('host'))) } : {}) ?? c.notFound()
  })
}
