import { defineConfig } from 'vite'
import { resolve } from 'node:path'

// The pages a coordinator serves (`/join`); built into dist-web.
export default defineConfig({
  root: resolve(import.meta.dirname, 'web'),
  base: '/',
  build: {
    outDir: resolve(import.meta.dirname, 'dist-web'),
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: { join: resolve(import.meta.dirname, 'web/join.html') } },
  },
  worker: { format: 'es' },
})
