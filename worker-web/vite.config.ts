import { defineConfig, type Plugin } from 'vite'
import { pagesConfig } from './vite.pages.js'
import { cpSync, mkdirSync, readdirSync } from 'node:fs'
import { resolve } from 'node:path'

/** Copies the ML runtimes' wasm files next to the pages, served at /ml/ (no CDN). */
function mlAssets(): Plugin {
  const from = (pkg: string) => resolve(import.meta.dirname, '..', 'node_modules', pkg, 'dist')
  return {
    name: 'colony-ml-assets',
    closeBundle() {
      for (const [pkg, dir, keep] of [
        ['@tensorflow/tfjs-backend-wasm', 'tfjs', /\.wasm$/],
        ['onnxruntime-web', 'ort', /^ort-wasm-simd-threaded(\.jsep)?\.(wasm|mjs)$/],
      ] as const) {
        const out = resolve(import.meta.dirname, 'dist-web', 'ml', dir)
        mkdirSync(out, { recursive: true })
        for (const f of readdirSync(from(pkg))) if (keep.test(f)) cpSync(resolve(from(pkg), f), resolve(out, f))
      }
    },
  }
}

// The join page (`/join`), built into dist-web.
export default defineConfig(pagesConfig(import.meta.dirname, ['join'], { plugins: [mlAssets()] }))
