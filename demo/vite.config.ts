import { defineConfig, type Plugin } from 'vite'
import { pagesConfig } from '../worker-web/vite.pages.js'
import { cpSync, mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { encodeDigits, loadDigits } from './dist/digits.js'

/** The model files and the digits, next to the page at /demo-files/ (built here, never fetched from a hub). */
function demoFiles(): Plugin {
  return {
    name: 'colony-demo-files',
    closeBundle() {
      const out = resolve(import.meta.dirname, 'dist-web', 'demo-files')
      mkdirSync(out, { recursive: true })
      for (const f of ['mnist.onnx', 'model.json', 'weights.bin']) cpSync(resolve(import.meta.dirname, 'models', 'mnist', f), resolve(out, f))
      writeFileSync(resolve(out, 'digits.bin'), encodeDigits(loadDigits()))
    },
  }
}

// The scoring demo's page (`/demo`), built into dist-web.
export default defineConfig(pagesConfig(import.meta.dirname, ['demo'], { plugins: [demoFiles()] }))
