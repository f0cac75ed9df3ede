/** Turns a model source (URL or bytes, ONNX or tfjs) into the payload scoring actors load. */
import type { ModelPayload, ModelSource, TfjsModelFiles } from './types.js'

async function download(url: URL): Promise<Uint8Array> {
  const res = await fetch(url)
  if (!res.ok) throw new Error(`could not download the model from ${url}: HTTP ${res.status}`)
  return new Uint8Array(await res.arrayBuffer())
}

function absolute(url: string): URL {
  const base = typeof location !== 'undefined' ? location.href : undefined
  try { return new URL(url, base) } catch { throw new TypeError(`model URL '${url}' is not absolute (in Node, give http://... or file bytes)`) }
}

function tfjsPayload(files: TfjsModelFiles): ModelPayload {
  const manifest = files.modelJson?.weightsManifest
  if (!files.modelJson?.modelTopology || !Array.isArray(manifest)) throw new TypeError('a tfjs model needs model.json with modelTopology and weightsManifest')
  return { format: 'tfjs', topology: files.modelJson.modelTopology, weightSpecs: manifest.flatMap((g) => g.weights), weights: files.weights }
}

/** The driver downloads URLs itself, so peers need not reach them: the model then travels peer to peer. */
export async function modelPayload(source: ModelSource): Promise<ModelPayload> {
  if ('onnx' in source) {
    const bytes = typeof source.onnx === 'string' ? await download(absolute(source.onnx)) : source.onnx
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new TypeError('the ONNX model must be a URL or non-empty bytes')
    return { format: 'onnx', bytes }
  }
  if ('tfjs' in source) {
    if (typeof source.tfjs !== 'string') return tfjsPayload(source.tfjs)
    const url = absolute(source.tfjs)
    const modelJson = JSON.parse(new TextDecoder().decode(await download(url))) as TfjsModelFiles['modelJson']
    const parts = await Promise.all((modelJson.weightsManifest ?? []).flatMap((g) => g.paths).map((p) => download(new URL(p, url))))
    const weights = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let o = 0
    for (const p of parts) { weights.set(p, o); o += p.length }
    return tfjsPayload({ modelJson, weights })
  }
  throw new TypeError('model must be { onnx: url | bytes } or { tfjs: url | { modelJson, weights } }')
}
