/** `colony.ml` inside a Node executor: the runtimes from the peer's ML folder (ml-files.ts), loaded on first use. */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { colonyMl, type ColonyMl } from '../core/ml.js'

type Runtimes = typeof import('./ml-entry.js')
type Ort = typeof import('onnxruntime-web')

/** `dir`: the ML folder; `ortNodeDir`: onnxruntime-node's folder where the peer has it. */
export function nodeMl(dir: string, ortNodeDir?: string): ColonyMl {
  let runtimes: Promise<Runtimes> | undefined
  const load = () => runtimes ??= (import(pathToFileURL(join(dir, 'ml.mjs')).href) as Promise<Runtimes>).then((r) => {
    r.tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false) // parallelism comes from executors
    r.tfWasm.setWasmPaths(join(dir, '/'))
    r.ort.env.wasm.numThreads = 1
    r.ort.env.wasm.wasmPaths = pathToFileURL(join(dir, '/')).href
    return r
  })
  return colonyMl({
    async loadTf() { return (await load()).tf },
    async loadOrt(backend) {
      if (backend !== 'native') return (await load()).ort
      if (!ortNodeDir) throw new Error('onnxruntime-node is not installed on this peer; use the wasm backend')
      return createRequire(import.meta.url)(ortNodeDir) as Ort
    },
    defaults: () => ({ tfjsBackend: 'wasm', ortBackend: ortNodeDir ? 'native' : 'wasm' }),
    sha256Hex: async (b) => createHash('sha256').update(b).digest('hex'),
  })
}
