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
import { DEFAULT_MAX_STATE_BYTES, mountStateApi } from './state-api.js'
import type { Ingress } from './ingress.js'

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
  log?: (line: string) => void
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
  const log = opts.log ?? ((line: string) => console.log(`[coordinator] ${line}`))
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
    }, opts.schedulingPolicy)
  }
  const maxRate = opts.maxMessagesPerSecond ?? 200_000
  const helloTimeoutMs = opts.helloTimeoutMs ?? 5000

  const app = new Hono()
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
  mountStateApi(app, { store: () => store, needRole, maxStateBytes: opts.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES })

  app.get('/metrics', (c) => {
    const k = control.counters
    const lines = [
      `colony_peers ${control.sessions.size}`,
      `colony_tasks_queued ${control.queuedTasks()}`,
      ...Object.entries(control.kept()).map(([kind, n]) => `colony_${kind}_kept ${n}`),
      ...Object.entries(process.memoryUsage()).map(([kind, n]) => `colony_process_${kind.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_bytes ${n}`),
      `colony_tasks_finished_total ${k.tasksFinished}`,
      `colony_tasks_retried_total ${k.tasksRetried}`,
      `colony_duplicate_results_total ${k.duplicateResults}`,
      `colony_relayed_bytes_total ${k.relayedBytes}`,
      `colony_bad_messages_total ${k.badMessages}`,
      `colony_quorum_disagreements_total ${k.quorumDisagreements}`,
      `colony_peers_quarantined_total ${k.peersQuarantined}`,
      `colony_messages_rate_limited_total ${k.rateLimited}`,
      `colony_signals_refused_total ${k.signalsRefused}`,
      `colony_holds_refused_total ${k.holdsRefused}`,
      `colony_hello_timeouts_total ${socketStats.helloTimeouts}`,
      ...(opts.ingress ?? []).flatMap((i) => i.metrics?.() ?? []),
    ]
    return c.text(lines.join('\n') + '\n')
  })

  const socketStats = { helloTimeouts: 0 }
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

  const port = opts.port ?? 8787
  const hostname = opts.host ?? '127.0.0.1'
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({
      fetch: app.fetch, port, hostname,
      ...(opts.tls ? { createServer: createHttpsServer, serverOptions: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    }, () => resolve(s))
    s.once('error', reject)
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
    localSocket() {
      for (const s of locals) if (s.readyState === 3) locals.delete(s)
      const s = localSocket(peerEvents('127.0.0.1'))
      locals.add(s)
      return s
    },
    async close() {
      const led = lead.role === 'leader'
      lead.role = 'deposed'
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
