/**
 * Deployments from a driver: `serve` hands one to the coordinator, which keeps it running (its
 * replicas on the grid, its endpoint at POST /serve/<name>) after the driver is gone.
 */
import { encodeValue } from '@colony-grid/shared'
import type { ConnectedGrid } from '../connect.js'
import { modelPayload } from '../scoring/model.js'
import type { DeploymentStats, ServeOptions } from './types.js'

export interface Deployed { name: string; inputShape: number[]; versions: string[]; access: 'token' | 'public'; url: string }

async function answer<T>(res: Response, what: string): Promise<T> {
  const body = await res.json().catch(() => undefined) as { error?: { message?: string } } | undefined
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status}: ${body?.error?.message ?? res.statusText}`)
  return body as T
}

/**
 * Makes (or replaces) the deployment `name` on the grid's coordinator and resolves once each model
 * version has a replica loaded. URLs of models are downloaded here, so the coordinator needs no access to them.
 */
export async function serve(grid: ConnectedGrid, name: string, options: ServeOptions): Promise<Deployed> {
  const res = await grid.request('/api/deployments', { method: 'POST', headers: { 'content-type': 'application/x-msgpack' }, body: await deploymentBody(name, options) as BodyInit })
  const d = await answer<Omit<Deployed, 'url'>>(res, `deploying '${name}'`)
  return { ...d, url: new URL(`/serve/${encodeURIComponent(name)}`, grid.coordinatorUrl).href }
}

/**
 * What POST /api/deployments takes: msgpack `{ name, options }`, every model as bytes (URLs are
 * downloaded here, so the coordinator needs no access to them).
 */
export async function deploymentBody(name: string, options: ServeOptions): Promise<Uint8Array> {
  if (!options?.models) return encodeValue({ name, options })
  const models = await Promise.all(options.models.map(async (m) => {
    const p = await modelPayload(m)
    return p.format === 'onnx' ? { version: m.version, onnx: p.bytes }
      : { version: m.version, tfjs: { modelJson: { modelTopology: p.topology, weightsManifest: [{ paths: ['weights.bin'], weights: p.weightSpecs }] }, weights: p.weights } }
  }))
  return encodeValue({ name, options: { ...options, models } })
}

/** Every deployment's figures. */
export async function deployments(grid: ConnectedGrid): Promise<DeploymentStats[]> {
  return answer(await grid.request('/api/deployments'), 'listing deployments')
}

/** Ends a deployment: its replicas go, and its endpoint answers 404. */
export async function undeploy(grid: ConnectedGrid, name: string): Promise<void> {
  await answer(await grid.request(`/api/deployments/${encodeURIComponent(name)}`, { method: 'DELETE' }), `deleting '${name}'`)
}
