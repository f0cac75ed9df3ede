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

export function servePages(app: Hono, roots: readonly string[]): void {
  const cache = new Map<string, Uint8Array>()
  const file = (path: string): Uint8Array | undefined => {
    let data = cache.get(path)
    if (!data && existsSync(path)) { data = new Uint8Array(readFileSync(path)); cache.set(path, data) }
    return data
  }
  const send = (rel: string, immutable: boolean) => {
    let path = '', data: Uint8Array | undefined
    for (const root of roots) if ((data = file(path = join(root, rel)))) break
    if (!data) return undefined
    return new Response(data as Uint8Array<ArrayBuffer>, {
      headers: {
        'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        ...ISOLATION,
      },
    })
  }
  // Built assets (hashed names), the ML runtimes' wasm files the build copies under ml/, and the demo's model and digits.
  for (const [prefix, immutable] of [['/assets/*', true], ['/ml/*', true], ['/demo-files/*', false]] as const) {
    app.get(prefix, (c) => {
      const rel = normalize(c.req.path.slice(1))
      if (rel.startsWith('..') || rel.includes(`${sep}..`)) return c.notFound()
      return send(rel, immutable) ?? c.notFound()
    })
  }
  app.get('/:page{[a-z-]+}', (c) => send(`${c.req.param('page')}.html`, false) ?? c.notFound())
}
