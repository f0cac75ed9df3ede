/**
 * Bundles the editor's file in the browser with esbuild-wasm. `@colony-grid/client` resolves to
 * the page's client API (the driver runs here) or, on a peer, to what a task can use
 * there: `current()` and `ml` (the peer's `colony.ml`). '@tensorflow/tfjs' and
 * 'onnxruntime-web' resolve to the peer's copies. Other files of the IDE resolve by
 * relative path; other packages do not (there is no node_modules here).
 */
import * as esbuild from 'esbuild-wasm'
import wasmURL from 'esbuild-wasm/esbuild.wasm?url'
import ML_EXPORTS from 'virtual:ml-exports'
import { TASK_CLIENT_SHIM } from '../job-shim.js'

let started: Promise<void> | undefined

export class BundleError extends Error {
  constructor(message: string, readonly file?: string, readonly line?: number, readonly column?: number) { super(message) }
}

/** The module '@colony-grid/client' becomes: the page's API, or task-side stand-ins on peers. */
function clientShim(apiNames: string[]): string {
  // In the page, the real client (main is the driver); on a peer, what a task can use (job-shim.ts).
  const lines = [
    "import { current as taskCurrent, ml as taskMl } from 'colony-task'",
    'const page = globalThis.__colonyClient',
    'const onPeer = (name) => () => { throw new Error(name + "() works in main (the driver, in the page), not inside a task") }',
    'export function current() { return page ? page.current() : taskCurrent() }',
    'export const ml = taskMl',
  ]
  for (const name of apiNames) if (name !== 'current' && name !== 'ml' && /^[A-Za-z_$][\w$]*$/.test(name)) lines.push(`export const ${name} = page ? page.${name} : onPeer(${JSON.stringify(name)})`)
  return lines.join('\n')
}

/**
 * '@tensorflow/tfjs' and 'onnxruntime-web' become the peer's own, ready copies (`colony.ml`),
 * loaded when the bundle is imported on a peer. In the page (main) they are not there.
 */
function mlShim(lib: 'tf' | 'ort', names: string[]): string {
  const lines = [
    'const ml = globalThis.colony?.ml',
    `const lib = ml ? await ml.${lib}() : new Proxy({}, { get(_, k) { throw new Error(${JSON.stringify(`${lib === 'tf' ? '@tensorflow/tfjs' : 'onnxruntime-web'} works inside tasks (each peer's colony.ml), not in main, which runs in the page`)}) } })`,
    'export default lib',
  ]
  for (const n of names) if (n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n)) lines.push(`export const ${n} = ml ? lib.${n} : undefined`)
  return lines.join('\n')
}

export async function bundle(file: string, files: Record<string, string>, apiNames: string[]): Promise<string> {
  started ??= esbuild.initialize({ wasmURL, worker: true })
  await started
  const plugin: esbuild.Plugin = {
    name: 'colony-ide',
    setup(b) {
      b.onResolve({ filter: /^@colony-grid\/client(\/browser)?$/ }, () => ({ path: 'client', namespace: 'colony-client' }))
      b.onResolve({ filter: /^colony-task$/ }, () => ({ path: 'task', namespace: 'colony-client' }))
      b.onLoad({ filter: /.*/, namespace: 'colony-client' }, (a) => ({ contents: a.path === 'task' ? TASK_CLIENT_SHIM : clientShim(apiNames), loader: 'js' }))
      b.onResolve({ filter: /^\.{0,2}\// }, (a) => {
        const name = a.path.replace(/^\.\//, '').replace(/\.js$/, '.ts')
        const found = [name, `${name}.ts`].find((n) => n in files)
        if (!found) return { errors: [{ text: `no file '${a.path}' in the IDE (files: ${Object.keys(files).join(', ')})` }] }
        return { path: found, namespace: 'ide' }
      })
      b.onResolve({ filter: /^(@tensorflow\/tfjs|onnxruntime-web)$/ }, (a) => ({ path: a.path, namespace: 'colony-ml' }))
      b.onLoad({ filter: /.*/, namespace: 'colony-ml' }, (a) => ({ contents: mlShim(a.path === 'onnxruntime-web' ? 'ort' : 'tf', ML_EXPORTS[a.path === 'onnxruntime-web' ? 'ort' : 'tfjs']), loader: 'js' }))
      b.onResolve({ filter: /^[^./]/ }, (a) => (a.kind === 'entry-point' ? { path: a.path, namespace: 'ide' } : {
        errors: [{ text: `'${a.path}' cannot be imported here: jobs in the IDE bundle their own files, '@colony-grid/client', '@tensorflow/tfjs' and 'onnxruntime-web' (the last two inside tasks).` }],
      }))
      b.onLoad({ filter: /.*/, namespace: 'ide' }, (a) => ({ contents: files[a.path], loader: 'ts' }))
    },
  }
  try {
    const out = await esbuild.build({
      entryPoints: [file], bundle: true, write: false, format: 'esm', platform: 'neutral', target: 'es2022',
      sourcemap: 'inline', sourcesContent: false, plugins: [plugin], logLevel: 'silent',
    })
    return out.outputFiles[0].text
  } catch (e) {
    const first = (e as esbuild.BuildFailure).errors?.[0]
    if (!first) throw e
    const at = first.location
    const where = at?.file.replace(/^ide:/, '')
    throw new BundleError(at ? `${where}:${at.line}:${at.column + 1}: ${first.text}` : first.text, where, at?.line, at ? at.column + 1 : undefined)
  }
}
