import { defineConfig } from 'vite'
import { pagesConfig } from '../worker-web/vite.pages.js'

// The web IDE (`/ide`), built into dist-web. CodeMirror and esbuild-wasm's loader make one
// ~850 kB page script, which the page needs all at once.
export default defineConfig(pagesConfig(import.meta.dirname, ['ide'], { chunkSizeWarningLimit: 1200 }))
