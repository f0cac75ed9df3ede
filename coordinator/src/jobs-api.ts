/**
 * The job API: jobs from uploaded bundles (`POST /api/jobs`), bundles a driver calls into
 * (`POST /api/bundles`), a job's info, work, log and live events, and a job's code for the
 * peers that run it. A job is seen only with the token that started it, or the operator's.
 *
 * Lists come in pages (`Page<T>`, paging.ts): `?limit=&cursor=&state=&order=`. Jobs are newest
 * first; a job's tasks, objects, actors and log lines oldest first; `order` turns either round.
 */
import type { Context, Hono } from 'hono'
import { createHash } from 'node:crypto'
import { AuthError, LimitError, ProtocolError, encodeValue } from '@colony-grid/shared'
import type { ControlPlane } from './control/control-plane.js'
import type { ControlStore } from './store/types.js'
import type { TokenGrant } from './tokens.js'
import { HttpNotFound, JobExpired } from './http-errors.js'
import { peerCredentials } from './identity.js'
import { jobEvents } from './job-events.js'
import { jsonSafe } from './json-safe.js'
import { pageQuery } from './paging.js'
import { ACTOR_STATES } from './control/actors.js'
import { JOB_STATES } from './control/jobs.js'
import { OBJECT_STATES } from './control/objects.js'
import { TASK_STATES } from './control/tasks.js'

export interface JobsApiOptions {
  /** The control plane and store as they are now (a standby that takes over makes new ones). */
  control: () => ControlPlane
  store: () => ControlStore
  /** The caller's grant, if its role is one of these (server.ts); else an AuthError. */
  needRole: (c: Context, allowed: ('driver' | 'worker')[]) => TokenGrant
  maxBundleBytes: number
  /** How often an idle event stream gets a keep-alive comment (default: COLONY_SSE_KEEPALIVE_MS, else 15 s). */
  sseKeepAliveMs?: number
}

export function mountJobsApi(app: Hono, o: JobsApiOptions): void {
  const { needRole, maxBundleBytes } = o
  /** A driver's JSON body that carries a bundle: the size is checked before it is read. */
  const bundleBody = async (c: Context, shape: string): Promise<{ bundle?: unknown; name?: unknown; args?: unknown }> => {
    needRole(c, ['driver'])
    const length = Number(c.req.header('content-length') ?? 0)
    if (length > maxBundleBytes * 1.5 + 65536) throw new LimitError('maxBundleBytes', `the request is ${length} bytes; bundles are limited to ${maxBundleBytes} bytes`)
    try { return (await c.req.json() ?? {}) as { bundle?: unknown } } catch { throw new ProtocolError(`the body must be JSON: ${shape}`) }
  }
  /** Keeps a job's ES module, by the hash peers fetch it with; `owner`: the token that uploaded it (it may fetch it back). */
  const storeBundle = async (bundle: unknown, owner: string): Promise<string> => {
    if (typeof bundle !== 'string' || bundle.length === 0) throw new ProtocolError('"bundle" must be the job\'s ES module source as a string')
    const code = Buffer.from(bundle, 'utf8')
    if (code.byteLength > maxBundleBytes) throw new LimitError('maxBundleBytes', `the bundle is ${code.byteLength} bytes; the limit is ${maxBundleBytes}`)
    const hash = createHash('sha256').update(code).digest('hex').slice(0, 32)
    await o.store().bundles.put(hash, code, owner)
    o.control().bundleUploaded(hash, owner)
    return hash
  }

  app.post('/api/jobs', async (c) => {
    const grant = needRole(c, ['driver'])
    const { bundle, name, args, taskTimeoutMs } = await bundleBody(c, '{ "bundle": "<ES module source>", "name"?: string, "args"?: [], "taskTimeoutMs"?: number }') as { bundle?: unknown; name?: unknown; args?: unknown; taskTimeoutMs?: unknown }
    if (args !== undefined && !Array.isArray(args)) throw new ProtocolError('"args" must be an array')
    const hash = await storeBundle(bundle, grant.id)
    const job = o.control().createBundleJob(hash, typeof name === 'string' && name ? name.slice(0, 200) : 'job', encodeValue(args ?? []), grant.id, { taskTimeoutMs: taskTimeoutMs as number | undefined })
    return c.json(jsonSafe(o.control().jobInfo(job.id)) as object, 201)
  })
  // A bundle whose exports a driver (the web IDE) calls as remote functions: peers import it by hash.
  app.post('/api/bundles', async (c) => {
    const grant = needRole(c, ['driver'])
    const { bundle } = await bundleBody(c, '{ "bundle": "<ES module source>" }')
    return c.json({ hash: await storeBundle(bundle, grant.id) }, 201)
  })

  // A job is seen only with the token that started it, or the operator's: another token gets 404, as if it did not exist.
  // A job retention dropped says so (410) to the token that started it, rather than "no job".
  /** The id of a job the caller may see; else 410 (retention dropped it) or 404. */
  const visibleOr404 = (c: Context): string => {
    const grant = needRole(c, ['driver'])
    const id = c.req.param('id') ?? ''
    if (o.control().jobVisible(id, grant)) return id
    const gone = o.control().jobExpired(id)
    if (gone && (grant.operator || gone.owner === grant.id)) {
      throw new JobExpired(`job ${id} expired: it finished at ${new Date(gone.finishedAt).toISOString()}, and a finished job is kept for ${duration(gone.summaryMs)} (COLONY_JOB_SUMMARY_MS)`)
    }
    throw new HttpNotFound(`no job ${id}`)
  }
  const jobOr404 = (c: Context) => o.control().jobInfo(visibleOr404(c))!
  /**
   * For a job's tasks, objects, actors and logs: gone once retention kept only its summary.
   * It does not build the job's info (whose infeasible work is counted), so a page costs only itself.
   */
  const detailsOr410 = (c: Context): { id: string } => {
    const id = visibleOr404(c)
    if (o.control().jobSummaryOnly(id)) {
      throw new JobExpired(`job ${id}'s tasks, objects, actors and log expired: a finished job keeps them for ${duration(o.control().retentionSettings.detailMs)} (COLONY_JOB_DETAIL_MS), then only its summary (GET /api/jobs/${id})`)
    }
    return { id }
  }
  const param = (c: Context) => (name: string) => c.req.query(name)
  app.get('/api/jobs', (c) => {
    const grant = needRole(c, ['driver'])
    const page = o.control().jobsPage(pageQuery(param(c), { what: 'jobs', states: JOB_STATES, order: 'desc' }), grant)
    return c.json({ ...page, items: page.items.map((j) => jsonSafe(j)) })
  })
  app.get('/api/jobs/:id', (c) => c.json(jsonSafe(jobOr404(c)) as object))
  app.delete('/api/jobs/:id', (c) => { jobOr404(c); return c.json(jsonSafe(o.control().cancelJob(c.req.param('id'))) as object) })
  app.get('/api/jobs/:id/tasks', (c) => {
    const { id } = detailsOr410(c)
    return c.json(o.control().jobTasks(id, pageQuery(param(c), { what: 'tasks', states: TASK_STATES }))!)
  })
  app.get('/api/jobs/:id/objects', (c) => {
    const { id } = detailsOr410(c)
    return c.json(o.control().jobObjects(id, pageQuery(param(c), { what: 'objects', states: OBJECT_STATES }))!)
  })
  app.get('/api/jobs/:id/actors', (c) => {
    const { id } = detailsOr410(c)
    return c.json(o.control().jobActors(id, pageQuery(param(c), { what: 'actors', states: ACTOR_STATES }))!)
  })
  app.get('/api/jobs/:id/logs', (c) => {
    const { id } = detailsOr410(c)
    return c.json(o.control().jobLogs(id, pageQuery(param(c), { what: 'log lines' }))!)
  })
  app.get('/api/jobs/:id/events', (c) => {
    const first = jobOr404(c)
    return jobEvents(c, o.control(), first, { keepAliveMs: o.sseKeepAliveMs })
  })
  // A job's code, for those it concerns only (ControlPlane.bundleReadable); anyone else gets 404, as if it did not exist.
  // A worker asks as the peer it is (the join token is every volunteer's): `Authorization: Peer <peerId>:<peerSecret>`.
  app.get('/api/bundles/:hash', async (c) => {
    const hash = c.req.param('hash')
    const creds = peerCredentials(c.req.header('authorization'))
    let allowed: boolean
    if (creds) {
      const peer = o.control().sessions.get(creds.id)
      if (!peer || !o.control().identities.verify(creds.id, creds.secret)) throw new AuthError('unknown peer, or a wrong peer secret: send "Authorization: Peer <peerId>:<peerSecret>" as given in welcome')
      allowed = o.control().bundleReadable(hash, { peer })
    } else {
      allowed = o.control().bundleReadable(hash, { grant: needRole(c, ['worker', 'driver']) })
    }
    const code = allowed ? await o.store().bundles.get(hash) : undefined
    if (!code) throw new HttpNotFound(`no bundle ${hash}`)
    return c.body(new Uint8Array(code), 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'private, max-age=31536000, immutable' })
  })
}

/** A retention period in words: `7 days`, `1 hour`, `90 s`. */
function duration(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute']]
  for (const [size, name] of units) if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms === size ? '' : 's'}`
  return `${ms / 1000} s`
}
