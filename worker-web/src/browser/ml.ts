/**
 * Ready ML handles for code inside a browser task (`colony.ml`): tfjs on the backend
 * this tab measured fastest, and onnxruntime-web sessions cached per model (core/ml.ts).
 * Both load on first use, from files the coordinator serves under /ml/ (no model or runtime hub).
 */
import { sha256Hex } from '@colony-grid/shared'
import { colonyMl } from '../core/ml.js'
import { matmulProbeModel, PROBE_INPUT_SIZE } from './onnx-probe-model.js'

export interface MlConfig {
  /** The tfjs backend the probe measured fastest here. */
  tfjsBackend: string
  /** The onnxruntime-web execution provider the probe measured fastest here. */
  ortBackend: string
  /** Where the wasm files are served from (the coordinator's origin). */
  assetsBase: string
}

type Tf = typeof import('@tensorflow/tfjs')
type Ort = typeof import('onnxruntime-web')

let config: MlConfig = { tfjsBackend: 'wasm', ortBackend: 'wasm', assetsBase: '/ml/' }
let tfLoaded: Promise<Tf> | undefined
let ortLoaded: Promise<Ort> | undefined

export function configureMl(c: MlConfig): void { config = c }

function loadTf(): Promise<Tf> {
  return tfLoaded ??= (async () => {
    const tf = await import('@tensorflow/tfjs')
    const wasm = await import('@tensorflow/tfjs-backend-wasm')
    // tfjs's threaded wasm spawns pthread workers that break once bundled; each executor is a worker already,
    // so parallelism comes from executors, and tfjs runs single-threaded SIMD in each. (The flag exists once
    // the wasm backend module is loaded, and is read when the backend starts.)
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false)
    wasm.setWasmPaths(`${config.assetsBase}tfjs/`)
    try { await import('@tensorflow/tfjs-backend-webgpu') } catch { /* no WebGPU support in this build */ }
    return tf
  })()
}

function loadOrt(backend = 'wasm'): Promise<Ort> {
  if (backend === 'native') return Promise.reject(new Error('onnxruntime-node runs only on Node peers; a tab has wasm (and webgpu where the probe found it)'))
  return ortLoaded ??= import('onnxruntime-web').then((o) => {
    o.env.wasm.wasmPaths = `${config.assetsBase}ort/`
    o.env.wasm.numThreads = 1 // as with tfjs: parallelism comes from executors
    return o
  })
}

/** `colony.ml` in a tab's executors. */
export const ml = colonyMl({
  loadTf, loadOrt,
  defaults: () => ({ tfjsBackend: config.tfjsBackend, ortBackend: config.ortBackend }),
  // WebCrypto where the page has it; @noble/hashes where it does not (a page from plain HTTP on a LAN address).
  sha256Hex,
})

/** Times a matmul on each tfjs backend that works here; the fastest wins (SwiftShader WebGPU is slower than wasm). */
export async function timeTfjsBackends(): Promise<Record<string, number>> {
  const t = await loadTf()
  const times: Record<string, number> = {}
  for (const backend of ['wasm', 'webgpu', 'webgl', 'cpu']) {
    try {
      if (!(await t.setBackend(backend))) continue
      await t.ready()
      const a = t.randomNormal([256, 256]), b = t.randomNormal([256, 256])
      await t.matMul(a, b).data() // warm: compile kernels
      const start = performance.now()
      for (let i = 0; i < 3; i++) await t.matMul(a, b).data()
      times[backend] = (performance.now() - start) / 3
      t.dispose([a, b])
    } catch (e) { console.warn(`colony probe: tfjs backend ${backend} does not work here: ${(e as Error)?.message ?? e}`) }
  }
  return times
}

/** Times a small MatMul model on each onnxruntime-web execution provider that works here. */
export async function timeOrtBackends(): Promise<Record<string, number>> {
  const o = await loadOrt()
  const model = matmulProbeModel()
  const times: Record<string, number> = {}
  for (const ep of ['wasm', 'webgpu']) {
    try {
      const s = await o.InferenceSession.create(model, { executionProviders: [ep] })
      const x = new o.Tensor('float32', new Float32Array(PROBE_INPUT_SIZE * PROBE_INPUT_SIZE).fill(0.5), [PROBE_INPUT_SIZE, PROBE_INPUT_SIZE])
      await s.run({ x })
      const start = performance.now()
      for (let i = 0; i < 3; i++) await s.run({ x })
      times[ep] = (performance.now() - start) / 3
      await s.release()
    } catch (e) { console.warn(`colony probe: onnxruntime-web ${ep} does not work here: ${(e as Error)?.message ?? e}`) }
  }
  return times
}
