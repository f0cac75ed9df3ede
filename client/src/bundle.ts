/**
 * Bundles a job file with esbuild into one ES module. Its exports are the job's
 * remote functions and classes; its default export is `main(grid, ...args)`.
 * Imports of '@colony-grid/client' resolve to a small shim over the executor's `colony`
 * global (job-shim.ts), so job code can call `current()` without shipping the client.
 */
import { build, type Plugin } from 'esbuild'
import { TASK_CLIENT_SHIM } from './job-shim.js'

const SHIM = `${TASK_CLIENT_SHIM}
export function connect() { throw new Error('a job bundle runs on the grid: use the grid passed to main(grid)') }
`

const clientShim: Plugin = {
  name: 'colony-client-shim',
  setup(b) {
    b.onResolve({ filter: /^@colony-grid\/client$/ }, () => ({ path: 'colony-client', namespace: 'colony-shim' }))
    b.onLoad({ filter: /.*/, namespace: 'colony-shim' }, () => ({ contents: SHIM, loader: 'js' }))
  },
}

export interface BundleResult { code: string; bytes: number }

export async function bundleJob(entry: string): Promise<BundleResult> {
  const out = await build({
    entryPoints: [entry], bundle: true, write: false, format: 'esm', platform: 'neutral', target: 'es2022',
    mainFields: ['module', 'main'], external: ['node:*'], plugins: [clientShim], logLevel: 'silent', sourcemap: 'inline',
  }).catch((e: { errors?: { text: string; location?: { file: string; line: number; column: number } }[] }) => {
    const first = e.errors?.[0]
    const where = first?.location ? ` (${first.location.file}:${first.location.line}:${first.location.column})` : ''
    throw new Error(`could not bundle ${entry}: ${first?.text ?? String(e)}${where}`)
  })
  const code = out.outputFiles[0].text
  return { code, bytes: Buffer.byteLength(code) }
}
