/**
 * Scoring in this one process, with no Colony: the reference results scoring through the
 * grid must equal, and the baseline the benchmark compares it with. onnxruntime-web on
 * wasm (one thread, as each Colony executor runs it), or onnxruntime-node where installed.
 */
import { createRequire } from 'node:module'
import { DIGIT_PIXELS } from './digits-file.js'

type Ort = typeof import('onnxruntime-web')

export async function loadOrt(backend: 'wasm' | 'native'): Promise<Ort> {
  if (backend === 'native') return createRequire(import.meta.url)('onnxruntime-node') as Ort
  const ort = await import('onnxruntime-web')
  ort.env.wasm.numThreads = 1
  return ort
}

export function hasOrtNode(): boolean {
  try { createRequire(import.meta.url).resolve('onnxruntime-node'); return true } catch { return false }
}

export interface InProcessScorer {
  /** Outputs for `pixels` (grey levels), `batchSize` rows per model call, as the scoring actor does. */
  score(pixels: Uint8Array, batchSize: number): Promise<Float32Array>
  release(): Promise<void>
}

export async function onnxInProcess(modelBytes: Uint8Array, backend: 'wasm' | 'native' = 'wasm'): Promise<InProcessScorer> {
  const ort = await loadOrt(backend)
  // One thread, as each Colony executor runs it.
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: [backend === 'native' ? 'cpu' : 'wasm'], ...(backend === 'native' ? { intraOpNumThreads: 1, interOpNumThreads: 1 } : {}),
  })
  const [input, output] = [session.inputNames[0], session.outputNames[0]]
  return {
    async score(pixels, batchSize) {
      const rows = pixels.length / DIGIT_PIXELS
      let out: Float32Array | undefined
      for (let r = 0; r < rows; r += batchSize) {
        const n = Math.min(batchSize, rows - r)
        const x = Float32Array.from(pixels.subarray(r * DIGIT_PIXELS, (r + n) * DIGIT_PIXELS), (v) => v * (1 / 255))
        const y = (await session.run({ [input]: new ort.Tensor('float32', x, [n, DIGIT_PIXELS]) }))[output]
        out ??= new Float32Array(rows * (y.dims[1] as number))
        out.set(y.data as Float32Array, r * (y.dims[1] as number))
      }
      return out ?? new Float32Array(0)
    },
    release: () => session.release(),
  }
}
