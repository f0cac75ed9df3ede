/** What the serving test and the serving benchmark share: tiny models whose answers are known, and the Exp3 recovery run. */
import type { DeploymentStats, Prediction, TfjsModelFiles } from '@colony-grid/client'

/** A one-layer tfjs model that predicts class (c + shift) % 10 for the one-hot row of class c. */
export function shiftModel(shift: number): TfjsModelFiles {
  const kernel = new Float32Array(100)
  for (let c = 0; c < 10; c++) kernel[c * 10 + ((c + shift) % 10)] = 8
  const weights = new Uint8Array(440)
  weights.set(new Uint8Array(kernel.buffer), 0)
  return {
    modelJson: {
      modelTopology: { class_name: 'Sequential', config: { name: `shift${shift}`, layers: [{ class_name: 'Dense', config: { name: 'out', units: 10, activation: 'softmax', use_bias: true, batch_input_shape: [null, 10], dtype: 'float32' } }] } },
      weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'out/kernel', shape: [10, 10], dtype: 'float32' }, { name: 'out/bias', shape: [10], dtype: 'float32' }] }],
    },
    weights,
  }
}

/** A tfjs model that scales each of 784 inputs by `scale` (a dense layer whose kernel is scale times the identity): a pipeline's preprocessing stage. */
export function scaleModel(scale: number): TfjsModelFiles {
  const n = 784
  const weights = new Uint8Array((n * n + n) * 4)
  const kernel = new Float32Array(weights.buffer, 0, n * n)
  for (let i = 0; i < n; i++) kernel[i * n + i] = scale
  return {
    modelJson: {
      modelTopology: { class_name: 'Sequential', config: { name: 'scale', layers: [{ class_name: 'Dense', config: { name: 'scale', units: n, activation: 'linear', use_bias: true, batch_input_shape: [null, n], dtype: 'float32' } }] } },
      weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'scale/kernel', shape: [n, n], dtype: 'float32' }, { name: 'scale/bias', shape: [n], dtype: 'float32' }] }],
    },
    weights,
  }
}

export const oneHot = (c: number) => Array.from({ length: 10 }, (_, i) => (i === c ? 1 : 0))
export const argmax = (row: number[]) => row.indexOf(Math.max(...row))

/** POST and GET on a coordinator with a token. */
export function serveClient(url: string, token: string) {
  const post = (path: string, body: unknown) => fetch(new URL(path, url), {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  })
  const stats = async (name: string) => (await (await fetch(new URL(`/serve/${name}`, url), { headers: { authorization: `Bearer ${token}` } })).json()) as DeploymentStats
  return { post, stats }
}

/**
 * On a deployment of shiftModel(0) as 'a' and shiftModel(1) as 'b' under Exp3: `warm` queries
 * whose truth is a's answer, then queries whose truth is b's (a got worse), ten at a time, until b has
 * 95% of the traffic. Returns how many feedbacks that took (Infinity past `limit`).
 */
export async function exp3Recovery(url: string, token: string, name: string, opts: { warm: number; limit: number }): Promise<{ afterWarm: number; feedbacks: number }> {
  const { post, stats } = serveClient(url, token)
  const round = async (i: number, truth: (c: number) => number) => {
    const c = i % 10
    const p = await (await post(`/serve/${name}`, { inputs: [oneHot(c)] })).json() as Prediction
    if (argmax(p.outputs[0]) !== (p.version === 'a' ? c : (c + 1) % 10)) throw new Error(`version ${p.version} answered ${argmax(p.outputs[0])} for ${c}`)
    const f = await post(`/serve/${name}/feedback`, { id: p.ids[0], label: truth(c) })
    if (f.status !== 200) throw new Error(`feedback: HTTP ${f.status}`)
  }
  for (let i = 0; i < opts.warm; i++) await round(i, (c) => c)
  const afterWarm = (await stats(name)).shares.a
  let feedbacks = 0
  while ((await stats(name)).shares.b < 0.95) {
    if (feedbacks >= opts.limit) return { afterWarm, feedbacks: Infinity }
    for (let i = 0; i < 10; i++) await round(feedbacks + i, (c) => (c + 1) % 10)
    feedbacks += 10
  }
  return { afterWarm, feedbacks }
}
