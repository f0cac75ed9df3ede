import { defineConfig, type Plugin } from 'vite'
import { pagesConfig } from '../worker-web/vite.pages.js'

/** `virtual:ml-exports`: the names tfjs and onnxruntime-web export, so job code can import them by name (ide/bundler.ts). */
function mlExportNames(): Plugin {
  return {
    name: 'colony-ml-export-names',
    resolveId: (id) => (id === 'virtual:ml-exports' ? '\0ml-exports' : undefined),
    async load(id) {
      if (id !== '\0ml-exports') return undefined
      const log = console.log
      console.log = () => {} // tfjs greets Node users on import
      try {
        const [tfjs, ort] = await Promise.all([import('@tensorflow/tfjs'), import('onnxruntime-web')])
        return `export default ${JSON.stringify({ tfjs: Object.keys(tfjs), ort: Object.keys(ort) })}`
      } finally { console.log = log }
    },
  }
}

// The web IDE (`/ide`) and the operator's dashboard (`/dashboard`), built into dist-web. CodeMirror and esbuild-wasm's loader make one
// ~850 kB page script, which the page needs all at once.
export default defineConfig(pagesConfig(import.meta.dirname, ['ide', 'dashboard'], { plugins: [mlExportNames()], chunkSizeWarningLimit: 1200 }))
