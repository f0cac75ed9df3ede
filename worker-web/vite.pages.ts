import type { Plugin, UserConfig } from 'vite'
import { resolve } from 'node:path'

/**
 * How every package builds its pages for the coordinator to serve: `web/<page>.html` into
 * `dist-web/`, at the site root (the coordinator serves all packages' dist-web folders together).
 */
export function pagesConfig(dir: string, pages: string[], opts: { plugins?: Plugin[]; chunkSizeWarningLimit?: number } = {}): UserConfig {
  return {
    root: resolve(dir, 'web'),
    base: '/',
    build: {
      outDir: resolve(dir, 'dist-web'),
      emptyOutDir: true,
      target: 'es2022',
      chunkSizeWarningLimit: opts.chunkSizeWarningLimit,
      rollupOptions: { input: Object.fromEntries(pages.map((p) => [p, resolve(dir, 'web', `${p}.html`)])) },
    },
    worker: { format: 'es' },
    plugins: opts.plugins ?? [],
  }
}
