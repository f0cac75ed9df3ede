/** What this browser offers the grid, found out at join: features, and ML backends timed where tasks run. */
import * as Comlink from 'comlink'
import type { ProbeWorkerApi } from './probe-worker.js'

export interface BrowserProbe {
  capabilities: string[]
  webgpu?: { vendor: string; architecture: string; description: string; isFallbackAdapter: boolean }
  webgl2: boolean
  wasmSimd: boolean
  wasmThreads: boolean
  cores: number
  memoryGb?: number
  /** ms for a 256x256 matmul on each tfjs backend that works here. */
  tfjsMs: Record<string, number>
  /** The fastest of them: what tasks get by default. */
  tfjsBackend: string
  /** ms for a 64x64 MatMul model on each onnxruntime-web execution provider that works here. */
  ortMs: Record<string, number>
  ortBackend: string
}

// (module (func (result v128) i32.const 0 i8x16.splat)): validates only where wasm SIMD exists.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11])

export async function probeBrowser(): Promise<BrowserProbe> {
  const caps = ['wasm']
  const out: BrowserProbe = {
    capabilities: caps, webgl2: false, wasmSimd: false, wasmThreads: false, cores: navigator.hardwareConcurrency || 1, tfjsMs: {}, tfjsBackend: 'wasm', ortMs: {}, ortBackend: 'wasm',
    memoryGb: (navigator as { deviceMemory?: number }).deviceMemory,
  }
  try {
    const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu
    const adapter = await gpu?.requestAdapter() as { info?: Record<string, unknown>; isFallbackAdapter?: boolean } | null | undefined
    if (adapter) {
      const info = adapter.info ?? {}
      out.webgpu = {
        vendor: String(info.vendor ?? ''), architecture: String(info.architecture ?? ''), description: String(info.description ?? ''),
        isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false),
      }
      caps.push('webgpu')
    }
  } catch { /* no WebGPU */ }
  try { out.webgl2 = !!document.createElement('canvas').getContext('webgl2') } catch { /* none */ }
  if (out.webgl2) caps.push('webgl2')
  out.wasmSimd = WebAssembly.validate(SIMD_PROBE)
  if (out.wasmSimd) caps.push('wasm-simd')
  out.wasmThreads = typeof SharedArrayBuffer !== 'undefined' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true
  if (out.wasmThreads) caps.push('wasm-threads')
  // Measured in a worker, as tasks run: the name of a backend says nothing of its speed.
  const worker = new Worker(new URL('./probe-worker.ts', import.meta.url), { type: 'module', name: 'colony-probe' })
  const api = Comlink.wrap<ProbeWorkerApi>(worker)
  const bounded = (p: Promise<Record<string, number>>, what: string) => Promise.race([
    p, new Promise<Record<string, number>>((r) => setTimeout(() => r({}), 15_000)),
  ]).catch((e: Error) => { console.warn(`colony probe: ${what} could not load (${e?.message ?? e}); tasks still run, without it`); return {} })
  try {
    out.tfjsMs = await bounded(api.timeTfjsBackends(), 'tfjs')
    out.ortMs = await bounded(api.timeOrtBackends(), 'onnxruntime-web')
  } finally { worker.terminate() }
  out.tfjsBackend = fastest(out.tfjsMs) ?? 'wasm'
  out.ortBackend = fastest(out.ortMs) ?? 'wasm'
  caps.push(`tfjs-${out.tfjsBackend}`, `ort-${out.ortBackend}`)
  return out
}

function fastest(ms: Record<string, number>): string | undefined {
  return Object.entries(ms).sort((a, b) => a[1] - b[1])[0]?.[0]
}
