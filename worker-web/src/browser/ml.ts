/**
 * Ready ML handles for code inside a browser task (`colony.ml`): tfjs on the backend
 * this tab measured fastest, and onnxruntime-web sessions cached per model. Both load
 * on first use, from files the coordinator serves under /ml/ (no model or runtime hub).
 */
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
const sessions = new Map<string, Promise<unknown>>()

export function configureMl(c: MlConfig): void { config = c }

async function loadTf(): Promise<Tf> {
  const tf = await import('@tensorflow/tfjs')
  const wasm = await import('@tensorflow/tfjs-backend-wasm')
  // tfjs's threaded wasm spawns pthread workers that break once bundled; each executor is a worker already,
  // so parallelism comes from executors, and tfjs runs single-threaded SIMD in each. (The flag exists once
  // the wasm backend module is loaded, and is read when the backend starts.)
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false)
  wasm.setWasmPaths(`${config.assetsBase}tfjs/`)
  try { await import('@tensorflow/tfjs-backend-webgpu') } catch { /* no WebGPU support in this build */ }
  return tf
}

/** tfjs, on `backend` if given, else on this tab's fastest. */
export async function tf(opts: { backend?: string } = {}): Promise<Tf> {
  const t = await (tfLoaded ??= loadTf())
  const want = opts.backend ?? config.tfjsBackend
  if (t.getBackend() !== want) {
    if (!(await t.setBackend(want))) throw new Error(`tfjs backend '${want}' is not available in this tab`)
    await t.ready()
  }
  return t
}

export async function ort(): Promise<Ort> {
  return ortLoaded ??= import('onnxruntime-web').then((o) => {
    o.env.wasm.wasmPaths = `${config.assetsBase}ort/`
    o.env.wasm.numThreads = 1 // as with tfjs: parallelism comes from executors
    return o
  })
}

/** An onnxruntime-web session for a model (URL or bytes), created once per model and kept warm; on this tab's fastest provider by default. */
export async function session(model: string | Uint8Array, opts: { executionProviders?: string[] } = {}): Promise<import('onnxruntime-web').InferenceSession> {
  const key = typeof model === 'string' ? `url:${model}|${opts.executionProviders ?? ''}` : `bytes:${await digest(model)}|${opts.executionProviders ?? ''}`
  let s = sessions.get(key)
  if (!s) {
    const o = await ort()
    s = o.InferenceSession.create(model as never, { executionProviders: opts.executionProviders ?? [config.ortBackend] })
    s.catch(() => sessions.delete(key))
    sessions.set(key, s)
  }
  return s as Promise<import('onnxruntime-web').InferenceSession>
}

async function digest(b: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>))
  return Array.from(h.subarray(0, 12), (x) => x.toString(16).padStart(2, '0')).join('')
}

/** Times a matmul on each tfjs backend that works here; the fastest wins (SwiftShader WebGPU is slower than wasm). */
export async function timeTfjsBackends(): Promise<Record<string, number>> {
  const t = await (tfLoaded ??= loadTf())
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
  const o = await ort()
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
