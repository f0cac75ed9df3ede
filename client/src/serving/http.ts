/**
 * The serving endpoint, as the coordinator mounts it (its `ingress` option): fetch-API requests in,
 * responses out, so the coordinator needs nothing of serving's and this module nothing of Hono's.
 *   POST   /serve/<name>            { "inputs": [[...], ...] } or float32 rows (application/octet-stream)
 *                                   → { outputs, version, ids, confidence?, cached }
 *   POST   /serve/<name>/feedback   { "id", "label" } or { "feedback": [{ id, label }, ...] }
 *   GET    /serve/<name>            the deployment's figures
 *   POST   /api/deployments         msgpack { name, options }: make or replace one (submit token)
 *   GET    /api/deployments         every deployment's figures
 *   PATCH  /api/deployments/<name>  { "sloMs" }: a new latency objective, from the next batch on
 *   DELETE /api/deployments/<name>
 * Who may call /serve/<name> is the deployment's `access`: holders of a submit token, or anyone.
 */
import { AuthError, ColonyError, TimeoutError, decodeValue } from '@colony-grid/shared'
import type { MetricFamily, MetricLabels } from '@colony-grid/coordinator'
import type { Deployment } from './deployment.js'
import { BadInputError, NoDeploymentError, QueueFullError } from './errors.js'
import { LATENCY_BUCKETS_S, type Histogram } from './histogram.js'
import type { ServeHost } from './host.js'
import type { ServeOptions } from './types.js'

/** The caller, as the coordinator's token registry sees it. */
export interface Caller { role?: 'driver' | 'worker'; operator?: boolean }

export interface ServeIngressOptions {
  /** Largest request body to /serve (bytes). Default 4 MiB. */
  maxBodyBytes?: number
  /** Largest deployment (its models) to /api/deployments. Default 256 MiB. */
  maxDeployBytes?: number
}

class TooLargeError extends ColonyError { override readonly code = 'TOO_LARGE' }

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })

function errorResponse(e: unknown): Response {
  const err = e as Error
  const body = (code: string) => ({ error: { code, message: err?.message ?? String(e) } })
  if (e instanceof QueueFullError) return json(body(e.code), 429, { 'retry-after': String(e.retryAfterS) })
  if (e instanceof BadInputError) return json(body(e.code), 400)
  if (e instanceof NoDeploymentError) return json(body(e.code), 404)
  if (e instanceof AuthError) return json(body(e.code), 401)
  if (e instanceof TooLargeError) return json(body(e.code), 413)
  if (e instanceof TimeoutError) return json(body(e.code), 504)
  return json(body((e as ColonyError)?.code ?? 'UPSTREAM'), 502)
}

/** The body, refused past `max` bytes whatever Content-Length claims. */
async function bodyOf(req: Request, max: number): Promise<Uint8Array> {
  const claimed = Number(req.headers.get('content-length') ?? NaN)
  if (claimed > max) throw new TooLargeError(`the body is ${claimed} bytes; at most ${max}`)
  if (!req.body) return new Uint8Array(0)
  const parts: Uint8Array[] = []
  let size = 0
  for await (const part of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += part.byteLength
    if (size > max) throw new TooLargeError(`the body is over ${max} bytes`)
    parts.push(part)
  }
  const out = new Uint8Array(size)
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.byteLength }
  return out
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch { /* below */ }
  throw new BadInputError('the body must be a JSON object, e.g. { "inputs": [[0, 0.5, ...]] }')
}

export class ServeIngress {
  readonly prefixes = ['/serve', '/api/deployments']

  constructor(private readonly host: ServeHost, private readonly opts: ServeIngressOptions = {}) {}

  async fetch(req: Request, caller: Caller): Promise<Response> {
    try {
      return await this.route(req, caller)
    } catch (e) {
      return errorResponse(e)
    }
  }

  /** Its metric families for /metrics (the coordinator writes them with prom-client): per deployment, version and replica. */
  metrics(): MetricFamily[] {
    const family = <T extends 'counter' | 'gauge'>(type: T, name: string, help: string) => ({ type, name, help, samples: [] as { labels: MetricLabels; value: number }[] })
    const requests = family('counter', 'colony_serve_requests_total', 'Requests to /serve/<deployment>.')
    const rows = family('counter', 'colony_serve_rows_total', 'Rows scored.')
    const pending = family('gauge', 'colony_serve_pending_rows', 'Rows waiting for a batch.')
    const rejected = family('counter', 'colony_serve_rejected_total', 'Requests refused, by reason (queue_full, bad_input, timeout).')
    const recent = family('gauge', 'colony_serve_recent_latency_seconds', 'Request latency of the recent requests, at quantiles 0.5 and 0.99.')
    const hitRatio = family('gauge', 'colony_serve_cache_hit_ratio', 'Share of rows answered from the result cache.')
    const cacheEntries = family('gauge', 'colony_serve_cache_entries', 'Entries in the result cache.')
    const queued = family('gauge', 'colony_serve_queue_length', 'Rows queued for a version\'s replicas.')
    const replicas = family('gauge', 'colony_serve_replicas', 'Replicas of a version.')
    const batchSize = family('gauge', 'colony_serve_batch_size', 'The batch size a replica is sized to now.')
    const replicaRows = family('counter', 'colony_serve_replica_rows_total', 'Rows a replica scored.')
    const histogram = (name: string, help: string) => ({ type: 'histogram' as const, name, help, buckets: LATENCY_BUCKETS_S, series: [] as ReturnType<Histogram['series']>[] })
    const requestLatency = histogram('colony_serve_request_latency_seconds', 'Requests, from arrival to answer.')
    const batchLatency = histogram('colony_serve_batch_latency_seconds', 'Batches on a replica, from dispatch to result.')
    for (const d of this.host.list()) {
      const s = d.stats(), deployment = s.name
      requests.samples.push({ labels: { deployment }, value: s.requests })
      rows.samples.push({ labels: { deployment }, value: s.rows })
      pending.samples.push({ labels: { deployment }, value: s.pending })
      for (const [reason, n] of [['queue_full', s.rejected.full], ['bad_input', s.rejected.badInput], ['timeout', s.rejected.timedOut]] as const) {
        rejected.samples.push({ labels: { deployment, reason }, value: n })
      }
      recent.samples.push({ labels: { deployment, quantile: '0.5' }, value: s.latency.p50 / 1000 }, { labels: { deployment, quantile: '0.99' }, value: s.latency.p99 / 1000 })
      hitRatio.samples.push({ labels: { deployment }, value: s.cache.hitRatio })
      cacheEntries.samples.push({ labels: { deployment }, value: s.cache.entries })
      const latency = d.latencyHistograms()
      requestLatency.series.push(latency.requests.series({ deployment }))
      for (const b of latency.batches) batchLatency.series.push(b.histogram.series({ deployment, version: b.version, peer: b.peer }))
      for (const v of s.versions) {
        queued.samples.push({ labels: { deployment, version: v.version }, value: v.queued })
        replicas.samples.push({ labels: { deployment, version: v.version }, value: v.replicas.length })
        for (const r of v.replicas) {
          batchSize.samples.push({ labels: { deployment, version: v.version, peer: r.peer }, value: r.batchSize })
          replicaRows.samples.push({ labels: { deployment, version: v.version, peer: r.peer }, value: r.served })
        }
      }
    }
    return [requests, rows, pending, rejected, recent, hitRatio, cacheEntries, requestLatency, queued, replicas, batchSize, replicaRows, batchLatency]
  }

  close(): Promise<void> { return this.host.close() }

  private async route(req: Request, caller: Caller): Promise<Response> {
    const path = new URL(req.url).pathname.split('/').filter(Boolean).map(decodeURIComponent)
    const submitter = caller.role === 'driver'
    const needSubmitter = () => { if (!submitter) throw new AuthError('this needs a submit token: send "Authorization: Bearer <token>"') }
    if (path[0] === 'api') {
      needSubmitter()
      if (req.method === 'GET' && path.length === 2) return json(this.host.list().map((d) => d.stats()))
      if (req.method === 'POST' && path.length === 2) {
        let spec: { name?: unknown; options?: ServeOptions }
        try { spec = decodeValue(await bodyOf(req, this.opts.maxDeployBytes ?? 256 << 20)) } catch (e) {
          if (e instanceof TooLargeError) throw e
          throw new BadInputError('the body must be msgpack { name, options } (serve() in @colony-grid/client sends it)')
        }
        if (typeof spec?.name !== 'string' || !spec.options) throw new BadInputError('the body must be msgpack { name, options }')
        const d = await this.host.deploy(spec.name, spec.options)
        return json({ name: d.name, inputShape: d.rowShape, versions: d.versions, access: d.access, ...(spec.options.pipeline ? { pipeline: spec.options.pipeline } : {}) }, 201)
      }
      if (req.method === 'GET' && path.length === 3) return json(this.host.get(path[2]).stats())
      if (req.method === 'PATCH' && path.length === 3) {
        const d = this.host.get(path[2]), body = parseJson(await bodyOf(req, 64 << 10))
        if (body.sloMs !== undefined) d.objectiveMs = body.sloMs as number
        return json(d.stats())
      }
      if (req.method === 'DELETE' && path.length === 3) { await this.host.remove(path[2]); return json({ deleted: path[2] }) }
      return json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${new URL(req.url).pathname}` } }, 404)
    }
    // Only a submitter is told which deployments there are.
    const d = submitter ? this.host.get(path[1] ?? '') : this.host.find(path[1] ?? '')
    if (!d) throw new NoDeploymentError(`no deployment '${path[1] ?? ''}'`)
    if (d.access !== 'public') needSubmitter()
    if (req.method === 'GET' && path.length === 2) return json(d.stats())
    if (req.method === 'POST' && path.length === 2) return json(await d.predict(await this.rows(req, d)))
    if (req.method === 'POST' && path.length === 3 && path[2] === 'feedback') {
      const body = parseJson(await bodyOf(req, this.opts.maxBodyBytes ?? 4 << 20))
      const items = Array.isArray(body.feedback) ? body.feedback as { id?: unknown; label?: unknown }[] : [body as { id?: unknown; label?: unknown }]
      let known = 0
      for (const f of items) {
        if (typeof f?.id !== 'string') throw new BadInputError('feedback needs { "id": an id from a prediction, "label": the true class }')
        if (d.feedback(f.id, f.label as number)) known++
      }
      return json({ applied: known, unknown: items.length - known })
    }
    return json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${new URL(req.url).pathname}` } }, 404)
  }

  private async rows(req: Request, d: Deployment): Promise<Float32Array[]> {
    const bytes = await bodyOf(req, this.opts.maxBodyBytes ?? 4 << 20)
    if ((req.headers.get('content-type') ?? '').startsWith('application/octet-stream')) {
      if (bytes.byteLength % 4 !== 0) throw new BadInputError(`a binary body is float32 rows (little-endian): ${bytes.byteLength} bytes is not whole floats`)
      return d.toRows(new Float32Array(bytes.slice().buffer))
    }
    return d.toRows(parseJson(bytes).inputs)
  }
}
