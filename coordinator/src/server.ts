/**
 * The coordinator process: a Hono app on @hono/node-server. Peers hold one binary
 * WebSocket at /ws (@hono/node-ws, handled by peer-socket.ts); people and the CLI use the JSON API under /api.
 * HTTP callers authenticate with `Authorization: Bearer <token>`, or, for a peer's own
 * requests (a job's bundle), `Authorization: Peer <peerId>:<peerSecret>` (identity.ts);
 * never with a token in the query string, which would end up in proxies' logs.
 * Here: tokens, peers, metrics, /ws and the process; the job API is jobs-api.ts, named state state-api.ts.
 */
import { Hono, type Context } from 'hono'
import { serve, type ServerType } from '@hono/node-server'
import { createNodeWebSocket } from '@hono/node-ws'
import { createServer as createHttpsServer } from 'node:https'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import {
  AuthError, CLOSE_STANDBY, ColonyError, DEFAULT_LIMITS, FAULTS, LimitError, faultWarning, MAX_RECONNECT_PAUSE_MS, ProtocolError, type Limits,
} from '@colony-grid/shared'
import type { SchedulingPolicy } from './control/scheduling.js'
import type { RetentionOptions } from './control/retention.js'
import { ControlPlane } from './control/control-plane.js'
import { DEFAULT_QUOTAS, type Quotas } from './control/options.js'
import { MemoryStore } from './store/memory.js'
import { SqliteStore } from './store/sqlite.js'
import { RedisStore } from './store/redis.js'
import type { ControlStore } from './store/types.js'
import { Leadership, type Role } from './leadership.js'
import { localSocket, type LocalSocket } from './local-socket.js'
import { answerAsStandby, standbySocket } from './standby-http.js'
import { tokensInRedis } from './shared-tokens.js'
import { TokenRegistry, type TokenGrant, type Tokens } from './tokens.js'
import { servePages } from './pages.js'
import { DEFAULT_TURN_TTL_S, iceServersFor, type TurnSecretOptions } from './ice-servers.js'
import { publicUrlOf } from './public-url.js'
import { peerSocket } from './peer-socket.js'
import { bearer, remoteAddress } from './request-origin.js'
import { HttpNotFound, httpStatusOf } from './http-errors.js'
import { mountJobsApi } from './jobs-api.js'
import { mountSummaryApi } from './summary-api.js'
import { DEFAULT_MAX_STATE_BYTES, mountStateApi } from './state-api.js'
import { mountHistoryApi } from './grid-history.js'
import type { Ingress } from './ingress.js'
import { CoordinatorMetrics, sameSecret } from './metrics.js'
import { createLogger, lineLogger, type Logger } from './logger.js'
import { accessLog } from './access-log.js'
import { readinessOf, type Readiness } from './readiness.js'

export interface CoordinatorOptions {
  /** Default 8787; 0 picks a free port. */
  port?: number
  /** The address to listen on; default 127.0.0.1 (this machine only). `0.0.0.0` serves other machines. */
  host?: string
  /**
   * The URL other machines reach this coordinator at (`https://grid.example.org`): every link
   * and page uses it. Default: this server's own address (its first LAN address when it listens on all).
   */
  publicUrl?: string
  /** Behind a reverse proxy on this machine (Caddy): take peers' addresses from the X-Forwarded-For of loopback connections. */
  trustProxy?: boolean
  /** PEM certificate and key: serve HTTPS and WSS (otherwise plain HTTP, e.g. behind a TLS proxy). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /** TURN with coturn's shared secret (`use-auth-secret`): each peer gets time-limited credentials of its own. */
  turn?: TurnSecretOptions
  /**
   * 'sqlite' (default) keeps state in `<dataDir>/colony.db`; 'memory' keeps nothing across restarts;
   * `redis://HOST:PORT[/DB]` keeps it in Redis, where coordinators can stand by for each other (`standby`).
   */
  store?: 'sqlite' | 'memory' | `redis://${string}` | `rediss://${string}` | ControlStore
  /**
   * With a Redis store: while another coordinator leads it, wait as a hot standby (answering peers
   * and HTTP with "standby, the leader is …") and take over when the leader's lease lapses.
   * Without it, a coordinator that finds a leader refuses to start.
   */
  standby?: boolean
  /** How long a leader's lease lives unrenewed (default 3000 ms): a standby takes over about this long after the leader dies. */
  leaseTtlMs?: number
  /**
   * This coordinator led, and lost its lease (Redis unreachable for a lease's life, or another took
   * it): it has already stopped serving. By default it logs; `colony start` exits, for its supervisor
   * to start it again as a standby.
   */
  onDeposed?: () => void
  /**
   * How long a finished job's work (task records, objects, actors, log) and then its summary are
   * kept, and a named state after its last write (control/retention.ts); see DEFAULT_RETENTION.
   */
  retention?: Partial<RetentionOptions>
  /** Where ready tasks go (control/scheduling.ts); by default LocalityPolicy: argument bytes held, then load, within fair share. */
  schedulingPolicy?: SchedulingPolicy
  /** Default `./.colony`. */
  dataDir?: string
  tokens?: Partial<Tokens>
  limits?: Partial<Limits>
  maxBundleBytes?: number
  /** The largest named state a PUT /api/state/<key> may store (state-api.ts); default 32 MiB. */
  maxStateBytes?: number
  /** Fix the tasks queued per executor; by default the coordinator keeps about `pipelineTargetMs` of work queued. */
  pipelineDepth?: number
  pipelineTargetMs?: number
  maxPipelineDepth?: number
  reconcileMs?: number
  heartbeatTimeoutMs?: number
  /** STUN/TURN servers peers use for the data plane (RTCIceServer shape); none by default (host candidates). */
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[]
  /** Routes libraries add (ingress.ts): `colony start` mounts serving's /serve and /api/deployments. */
  ingress?: Ingress[]
  /** A folder of built pages (the join page and others) to serve at `/<name>`. */
  webRoots?: string[]
  /** Bad messages tolerated on one connection before it is closed. */
  maxBadMessages?: number
  /** Messages one connection may send per second (bursts of twice that); past it, the connection is read more slowly, with a LimitError to say so. */
  maxMessagesPerSecond?: number
  /** A WebSocket that has not sent a valid hello within this is closed; default 5000 ms. */
  helloTimeoutMs?: number
  quotas?: Partial<Quotas>
  /** The time limit of a task that sets no `timeoutMs`, where its job sets no `taskTimeoutMs` (default 15 minutes; 0: none). */
  defaultTaskTimeoutMs?: number
  /** Bytes of log lines the coordinator keeps per job, the most recent (default 2 MiB). */
  maxJobLogBytes?: number
  /**
   * Where the coordinator's lines go, as text. By default they go to `logger`, at the level their
   * wording says (logger.ts); given this and no `logger`, there is no HTTP access log.
   */
  log?: (line: string) => void
  /** A pino logger for the coordinator's lines and the HTTP access log; default: made from COLONY_LOG_FORMAT and COLONY_LOG_LEVEL (logger.ts). */
  logger?: Logger
  /**
   * A token that GET /metrics then requires, as `Authorization: Bearer <it>` (the operator's submit
   * token is taken too): its `job` label names running jobs. Default $COLONY_METRICS_TOKEN; unset,
   * /metrics needs no token.
   */
  metricsToken?: string
}

export interface Coordinator {
  /** The public URL (see CoordinatorOptions.publicUrl). */
  url: string
  /** Where a process on this machine reaches it (the listening address; loopback when it listens on all). */
  localUrl: string
  port: number
  tokens: Tokens
  /** The control plane; it exists once this coordinator leads (at once, unless it started as a standby). */
  readonly control: ControlPlane
  readonly store: ControlStore
  /** 'standby' until it holds the lease (and again after losing it); 'deposed' once closed. */
  readonly role: Role
  /** Resolves when this coordinator leads (at once without a lease); after a lost lease, when it leads again. */
  readonly leading: Promise<void>
  /** Whether it serves the grid now (GET /readyz): it leads, and is not waiting for its peers after a restart. */
  readiness(): Readiness
  /**
   * A peer connection from this process, in memory (local-socket.ts): what `connect()` takes as its
   * `webSocket`, for a library's driver that runs beside the coordinator (serving). A standby's refuses, as /ws does.
   */
  localSocket(): LocalSocket
  close(): Promise<void>
}

function errorBody(err: ColonyError | Error, code?: string) {
  return { error: { code: code ?? (err as ColonyError).code ?? 'ERROR', message: err.message, ...(err instanceof LimitError ? { limit: err.limit } : {}) } }
}

export async function startCoordinator(opts: CoordinatorOptions = {}): Promise<Coordinator> {
  const logger = opts.logger ?? (opts.log ? undefined : createLogger())
  const log = opts.log ?? lineLogger(logger!)
  if (faultWarning()) log(faultWarning()!)
  const dataDir = opts.dataDir ?? join(process.cwd(), '.colony')
  const redisUrl = typeof opts.store === 'string' && /^rediss?:\/\//.test(opts.store) ? opts.store : undefined
  // On Redis, each term as leader gets a connection of its own (see 'lost' below).
  const openStore = (): ControlStore => typeof opts.store === 'object' ? opts.store
    : redisUrl ? new RedisStore(redisUrl)
      : opts.store === 'memory' ? new MemoryStore() : new SqliteStore(join(dataDir, 'colony.db'))
  let store = openStore()
  const env = process.env
  const sharedTokens = redisUrl ? await tokensInRedis(redisUrl, 'colony:tokens', {
    submit: opts.tokens?.submit ?? (env.COLONY_SUBMIT_TOKEN || undefined), join: opts.tokens?.join ?? (env.COLONY_JOIN_TOKEN || undefined),
    trusted: opts.tokens?.trusted ?? (env.COLONY_TRUSTED_JOIN_TOKEN || undefined),
  }) : undefined
  const registry = new TokenRegistry(store.kind === 'memory' ? undefined : dataDir, sharedTokens?.tokens ?? opts.tokens)
  const tokens = registry.main
  const tokenMismatch = await sharedTokens?.save(tokens)
  if (tokenMismatch) log(tokenMismatch)
  const reconcileMs = opts.reconcileMs ?? 5000
  if (reconcileMs < MAX_RECONNECT_PAUSE_MS * 1.25 + 500) log(`warning: a reconciliation window of ${reconcileMs} ms is shorter than a peer's longest pause between reconnects (${MAX_RECONNECT_PAUSE_MS * 1.25} ms); after a restart, actors of peers that were coming back may be failed`)
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits }
  const maxBundleBytes = opts.maxBundleBytes ?? 8 * 1024 * 1024
  const maxBad = opts.maxBadMessages ?? 20
  let control!: ControlPlane
  const socketStats = { helloTimeouts: 0 }
  /** The control plane while this coordinator leads; undefined before, as a standby, and once it has stepped down (its control plane is closed). */
  const leaderControl = (): ControlPlane | undefined => (leadership?.role === 'leader' ? control : undefined)
  const metricsToken = opts.metricsToken ?? (env.COLONY_METRICS_TOKEN || undefined)
  const metrics = new CoordinatorMetrics({
    control: leaderControl,
    helloTimeouts: () => socketStats.helloTimeouts,
    ingress: opts.ingress ?? [],
  })
  // Which coordinator serves (leadership.ts); made once the public URL is known.
  let leadership: Leadership | undefined
  /** Loads the tables from the store and serves them: at once, or when a standby takes the lease. */
  const takeOver = async () => {
    const snapshot = await store.load()
    control = new ControlPlane({
      snapshot,
      coordinators: () => leadership?.urls() ?? [],
      store, limits, log,
      pipelineDepth: opts.pipelineDepth,
      pipelineTargetMs: opts.pipelineTargetMs ?? 10,
      maxPipelineDepth: opts.maxPipelineDepth ?? 64,
      reconcileMs,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 15_000,
      iceServersFor: iceServersFor(opts.iceServers ?? [], opts.turn),
      // Fresh TURN credentials at half their life (renewed on every reconnect too).
      iceRefreshMs: opts.turn ? ((opts.turn.ttlSeconds ?? DEFAULT_TURN_TTL_S) * 1000) / 2 : 0,
      quotas: { ...DEFAULT_QUOTAS, ...opts.quotas },
      defaultTaskTimeoutMs: opts.defaultTaskTimeoutMs,
      maxJobLogBytes: opts.maxJobLogBytes,
      retention: opts.retention,
      taskTimings: metrics,
    }, opts.schedulingPolicy)
  }
  const maxRate = opts.maxMessagesPerSecond ?? 200_000
  const helloTimeoutMs = opts.helloTimeoutMs ?? 5000

  const app = new Hono()
  // First, so that it times everything after it, standbys' answers included.
  if (logger) app.use('*', accessLog(logger, opts.trustProxy === true))
  const { injectWebSocket, upgradeWebSocket, wss } = createNodeWebSocket({ app })
  // Frames over the limit get a clear error from us; far larger ones are cut by ws itself.
  ;(wss.options as { maxPayload?: number }).maxPayload = limits.maxFrameBytes * 2 + 1024

  app.onError((err, c) => {
    if (err instanceof ColonyError) {
      return c.json(errorBody(err), httpStatusOf(err))
    }
    log(`HTTP ${c.req.method} ${c.req.path} failed: ${err.stack ?? err}`)
    return c.json(errorBody(err, 'INTERNAL'), 500)
  })
  answerAsStandby(app, () => leadership, !!redisUrl)
  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}` } }, 404))

  const needRole = (c: Context, allowed: ('driver' | 'worker')[]): TokenGrant => {
    const grant = registry.check(bearer(c))
    if (!grant) throw new AuthError('missing, wrong or revoked token: send "Authorization: Bearer <token>" (colony start prints the tokens)')
    if (!allowed.includes(grant.role)) throw new AuthError(`this needs the ${allowed.includes('driver') ? 'submit' : 'join'} token`)
    return grant
  }
  const needOperator = (c: Context): TokenGrant => {
    const grant = needRole(c, ['driver'])
    if (!grant.operator) throw new AuthError('this needs the operator\'s submit token (the one colony start prints)')
    return grant
  }

  // Tokens: the operator makes one per user or machine, and revokes them.
  app.get('/api/tokens', (c) => { needOperator(c); return c.json(registry.list()) })
  app.post('/api/tokens', async (c) => {
    needOperator(c)
    const body = await c.req.json().catch(() => ({})) as { role?: unknown; label?: unknown; trusted?: unknown }
    if ((body.role !== 'submit' && body.role !== 'join') || (body.trusted !== undefined && (typeof body.trusted !== 'boolean' || (body.trusted && body.role !== 'join')))) {
      throw new ProtocolError('the body must be { "role": "submit" | "join", "label"?: string, "trusted"?: boolean } (trusted: a join token whose workers may run jobs\' mains)')
    }
    const made = registry.create(body.role, typeof body.label === 'string' ? body.label : '', body.trusted === true)
    return c.json({ token: made.token, ...made.info }, 201)
  })
  app.delete('/api/tokens/:id', (c) => {
    needOperator(c)
    const info = registry.revoke(c.req.param('id'))
    if (!info) throw new HttpNotFound(`no token ${c.req.param('id')} that can be revoked`)
    return c.json({ ...info, peersDropped: control.dropToken(info.id) })
  })

  // What a page needs before it has a token: the public URL (the join page links to it from an insecure origin).
  const publicInfo = { url: '' }
  app.get('/api/public', (c) => c.json({ url: publicInfo.url, secure: publicInfo.url.startsWith('https:') }))

  const readiness = (): Readiness => readinessOf(leadership?.role, leadership?.leaderUrl, control, { self: publicInfo.url, alone: !redisUrl })
  // For load balancers and orchestrators: 503 until this coordinator serves (readiness.ts). /healthz: the process is alive.
  app.get('/readyz', (c) => { const r = readiness(); return c.json(r, r.ready ? 200 : 503) })
  app.get('/healthz', (c) => c.json({ ok: true, peers: control.sessions.size, store: store.kind, queued: control.queuedTasks() }))

  app.get('/api/peers', (c) => {
    needRole(c, ['driver', 'worker'])
    if (FAULTS.httpHandlerThrows) throw new TypeError('injected fault http-handler-throws')
    return c.json(control.peerInfos())
  })

  // An operator lets a quarantined peer work again.
  app.post('/api/peers/:id/release', (c) => {
    needOperator(c)
    const id = c.req.param('id')
    if (!control.sessions.has(id) && !control.reputations.quarantined(id)) throw new HttpNotFound(`no peer ${id}`)
    return c.json({ peer: id, released: control.releasePeer(id) })
  })

  mountJobsApi(app, { control: () => control, store: () => store, needRole, maxBundleBytes })
  mountSummaryApi(app, { control: () => control, needRole, ready: () => readiness().ready })
  mountStateApi(app, { store: () => store, needRole, maxStateBytes: opts.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES })
  const history = mountHistoryApi(app, { control: leaderControl, needOperator })

  // Prometheus text format, HELP and TYPE on every family (metrics.ts); a standby's has the process's metrics and colony_leader 0.
  // With a metrics token, only its holder and the operator may scrape (the `job` label names running jobs).
  app.get('/metrics', async (c) => {
    if (metricsToken !== undefined) {
      const token = bearer(c)
      if (!sameSecret(token, metricsToken) && !registry.check(token)?.operator) {
        throw new AuthError('/metrics needs the metrics token (COLONY_METRICS_TOKEN) or the operator\'s token: send "Authorization: Bearer <token>"')
      }
    }
    return c.body(await metrics.text(), 200, { 'content-type': metrics.contentType })
  })

  const peerEvents = (address: string | undefined) => leadership?.role === 'leader'
    ? peerSocket({ control, registry, limits, maxRate, maxBad, helloTimeoutMs, log, stats: socketStats }, address)
    : standbySocket(leadership?.leaderUrl)
  app.get('/ws', upgradeWebSocket((c) => peerEvents(remoteAddress(c, opts.trustProxy === true))))
  /** Connections from this process (localSocket), closed with the coordinator. */
  const locals = new Set<LocalSocket>()

  for (const ingress of opts.ingress ?? []) {
    const handle = (c: Context) => { const g = registry.check(bearer(c)); return ingress.fetch(c.req.raw, { role: g?.role, operator: g?.operator }) }
    for (const prefix of ingress.prefixes) { app.all(prefix, handle); app.all(`${prefix}/*`, handle) }
  }

  // Last: a page's `/:name` route must not shadow /ws or the API.
  if (opts.webRoots?.length) servePages(app, opts.webRoots)

  /** A start that failed: the history's timer and the store's connection go with it (the process's metrics are shared, metrics.ts). */
  const abandonStart = async () => {
    history.stop()
    await store.close().catch(() => {})
  }

  const port = opts.port ?? 8787
  const hostname = opts.host ?? '127.0.0.1'
  const server: ServerType = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({
      fetch: app.fetch, port, hostname,
      ...(opts.tls ? { createServer: createHttpsServer, serverOptions: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    }, () => resolve(s))
    s.once('error', reject)
  }).catch(async (e: unknown) => {
    // Listening failed (EADDRINUSE, say): nothing started here may outlive the attempt.
    await abandonStart()
    throw e
  })
  injectWebSocket(server)
  const actualPort = (server.address() as AddressInfo).port
  const scheme = opts.tls ? 'https' : 'http'
  const urls = publicUrlOf({ scheme, hostname, port: actualPort, publicUrl: opts.publicUrl })
  publicInfo.url = urls.publicUrl

  leadership = new Leadership({
    redisUrl, self: urls.publicUrl, standby: opts.standby === true, leaseTtlMs: opts.leaseTtlMs ?? 3000, log,
    async lead(lease, again) {
      // Each term on Redis writes through a connection of its own, fenced by the lease.
      if (again) store = openStore()
      if (lease) (store as RedisStore).fence(lease.key, lease.id)
      await takeOver()
    },
    stepDown() {
      // What it had not committed goes with its connection: peers replay it to the next leader.
      control.close()
      ;(store as RedisStore).abandon()
      for (const ws of wss.clients) ws.close(CLOSE_STANDBY, 'standby: this coordinator lost its lease')
      opts.onDeposed?.()
    },
  })
  try { await leadership.start() } catch (e) {
    await new Promise<void>((r) => server.close(() => r()))
    await abandonStart()
    throw e
  }
  const lead = leadership
  return {
    url: urls.publicUrl, localUrl: urls.localUrl, port: actualPort, tokens,
    get store() { return store },
    get leading() { return lead.leading },
    get control() {
      if (!control) throw new Error('this coordinator is a standby: it has no control plane until it leads')
      return control
    },
    get role() { return lead.role },
    readiness,
    localSocket() {
      for (const s of locals) if (s.readyState === 3) locals.delete(s)
      const s = localSocket(peerEvents('127.0.0.1'))
      locals.add(s)
      return s
    },
    async close() {
      const led = lead.role === 'leader'
      lead.role = 'deposed'
      history.stop()
      for (const i of opts.ingress ?? []) await i.close?.().catch((e: unknown) => log(`closing ${i.prefixes.join(', ')}: ${(e as Error)?.message ?? e}`))
      control?.close()
      for (const ws of wss.clients) ws.terminate()
      for (const s of locals) s.close(1001, 'the coordinator is closing')
      await new Promise<void>((r) => server.close(() => r()))
      // Commit before letting the lease go: a standby that takes over must find every write.
      if (led) await store.close()
      else await store.close().catch(() => {})
      await lead.close()
    },
  }
}
