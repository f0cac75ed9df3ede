#!/usr/bin/env node
/**
 * `colony`: start a coordinator, join a worker, run everything locally, submit a
 * job and follow it, or look at the grid.
 */
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createSecureContext } from 'node:tls'
import { bundleJob } from './bundle.js'
import { api, certificateHint, fail, num, request, savedTokens, target, type Target } from './cli-target.js'
import { cmdServe, SERVE_USAGE } from './cli-serve.js'
import { connect } from './connect.js'
import type { Grid } from '@colony-grid/worker-web'
import { ServeHost } from './serving/host.js'
import { ServeIngress } from './serving/http.js'

const HELP = `colony: a volunteer compute grid

  colony up       [--port 8787] [--peers N] [--data .colony]   coordinator + local Node peers (what npm start runs)
  colony start    [--port 8787] [--data .colony] [--memory]    the coordinator alone (SQLite store in --data)
                  Both also take:
                  --store redis://HOST:PORT[/DB]   keep the tables in Redis instead of SQLite (or COLONY_STORE)
                  --standby            with a Redis store: stand by while another coordinator leads it, and take
                                       over when it dies (peers given both URLs, --url A,B, follow)
                  --host ADDR          listen on ADDR (default 127.0.0.1, this machine only; 0.0.0.0: every address)
                  --public-url URL     the URL other machines use (https://grid.example.org behind a TLS proxy);
                                       every printed link and page uses it
                  --tls-cert FILE --tls-key FILE   serve HTTPS and WSS with this PEM certificate and key
                  --trust-proxy        behind a reverse proxy on this machine: peers' addresses from X-Forwarded-For
                  (or COLONY_HOST, COLONY_PUBLIC_URL, COLONY_TLS_CERT, COLONY_TLS_KEY, COLONY_TRUST_PROXY=1; TURN: COLONY_TURN_SECRET,
                  COLONY_TURN_URLS, COLONY_TURN_TTL_S; see the README's "Run a grid for other machines")
  colony worker   --url URL --token JOIN_TOKEN [--executors N] [--capabilities a,b] [--relay] [--ice-relay-only] [--rtc-bind ADDR] [--store-mb 2048] [--native-ml]
                  [--memory-mb 1024] [--executor-uid 65534] [--trusted] [--unconfined]
                  Job code runs in executors with namespaces of their own (Linux: no signals to
                  other processes, no network, another uid when run as root) and a memory cap.
                  Where that is impossible the worker does not start; --unconfined runs it anyway:
                  job code could then signal this process and reach your network.
                  --trusted: this is the operator's machine, joining with the trusted join token.
  colony submit   job.ts [--url URL] [--token SUBMIT_TOKEN] [--args '[1,2]'] [--name NAME]
  colony status   [job-id] [--url URL] [--token SUBMIT_TOKEN]
  colony token    create --role submit|join [--trusted] [--label L] | list | revoke ID    (with the operator's submit token)
  colony serve    deploy APP.ts | list | delete NAME [--url URL] [--token SUBMIT_TOKEN]
                  APP.ts's default export: { name, models: [{ version, onnx | tfjs }], inputShape, ... } (see the README's Serving)

URL and tokens default to $COLONY_URL (else http://127.0.0.1:8787) and $COLONY_TOKEN /
$COLONY_JOIN_TOKEN, else to ./.colony/tokens.json, which 'colony start' writes.
A grid with standby coordinators: give them all, comma-separated (--url https://a,https://b):
a worker fails over along them; submit, status and token ask each in turn until one answers.`

/** The built pages: the join page, the IDE, and the demo's where that package is installed (it is optional). */
function pageFolders(): string[] {
  const folders = ['@colony-grid/worker-web', '@colony-grid/client'].map((pkg) => join(dirname(fileURLToPath(import.meta.resolve(`${pkg}/package.json`))), 'dist-web'))
  try { folders.push(join(dirname(fileURLToPath(import.meta.resolve('@colony-grid/demo/package.json'))), 'dist-web')) } catch { /* no demo */ }
  return folders
}

/**
 * The coordinator, for `colony start` and `colony up`. It is an optional peer dependency of this
 * package, so that a driver's install leaves it out (and its native SQLite addon): say what to install.
 */
async function loadCoordinator(): Promise<typeof import('@colony-grid/coordinator')> {
  try {
    return await import('@colony-grid/coordinator')
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code !== 'ERR_MODULE_NOT_FOUND' || !err.message.includes("'@colony-grid/coordinator'")) throw e
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    fail(`this command runs a coordinator, and @colony-grid/coordinator is not installed (an install of @colony-grid/client alone leaves it out). Install it next to the client:\n  npm install @colony-grid/coordinator@${version}`)
  }
}

async function cmdStart(args: string[], withPeers: boolean): Promise<void> {
  const { values } = parseArgs({ args, options: {
    port: { type: 'string' }, data: { type: 'string' }, memory: { type: 'boolean' }, peers: { type: 'string' }, host: { type: 'string' },
    store: { type: 'string' }, standby: { type: 'boolean' },
    'public-url': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'trust-proxy': { type: 'boolean' },
  } })
  const env = process.env
  const host = values.host ?? (env.COLONY_HOST || undefined)
  const publicUrl = values['public-url'] ?? (env.COLONY_PUBLIC_URL || undefined)
  const tls = readTls(values['tls-cert'] ?? (env.COLONY_TLS_CERT || undefined), values['tls-key'] ?? (env.COLONY_TLS_KEY || undefined))
  const turn = env.COLONY_TURN_SECRET ? {
    secret: env.COLONY_TURN_SECRET,
    urls: (env.COLONY_TURN_URLS ?? '').split(',').map((u) => u.trim()).filter(Boolean),
    ttlSeconds: num(env.COLONY_TURN_TTL_S, 'COLONY_TURN_TTL_S'),
  } : undefined
  if (turn && turn.urls.length === 0) fail('COLONY_TURN_SECRET needs COLONY_TURN_URLS too: the TURN server\'s URLs, e.g. turn:turn.example.org:3478')
  if (!turn && env.COLONY_TURN_URLS) fail('COLONY_TURN_URLS needs COLONY_TURN_SECRET: coturn\'s static-auth-secret (use-auth-secret)')
  const storeUrl = values.store ?? (env.COLONY_STORE || undefined)
  if (storeUrl && !/^rediss?:\/\/[^/]/.test(storeUrl)) fail(`--store takes a Redis URL, redis://HOST:PORT[/DB] (got ${storeUrl}); without it the store is SQLite in --data`)
  if (storeUrl && values.memory) fail('--memory and --store are two stores: choose one')
  if (values.standby && !storeUrl) fail('--standby needs --store redis://HOST:PORT: a standby shares the leader\'s Redis')
  const store = values.memory ? 'memory' as const : storeUrl ? storeUrl as `redis://${string}` : 'sqlite' as const
  const { startCoordinator, setHeapGrowth } = await loadCoordinator()
  const heap = setHeapGrowth(env.COLONY_HEAP_GROWTH_PERCENT)
  if ('error' in heap) fail(heap.error)
  const port = num(values.port ?? process.env.PORT, 'port') ?? 8787
  const dataDir = resolve(values.data ?? '.colony')
  const reconcileMs = num(process.env.COLONY_RECONCILE_MS, 'COLONY_RECONCILE_MS')
  const pipelineDepth = num(process.env.COLONY_PIPELINE_DEPTH, 'COLONY_PIPELINE_DEPTH')
  let iceServers: { urls: string | string[]; username?: string; credential?: string }[] | undefined
  if (process.env.COLONY_ICE_SERVERS) {
    try { iceServers = JSON.parse(process.env.COLONY_ICE_SERVERS) as typeof iceServers } catch { fail('COLONY_ICE_SERVERS must be a JSON array of { urls, username?, credential? }') }
  }
  const heartbeatTimeoutMs = num(process.env.COLONY_HEARTBEAT_TIMEOUT_MS, 'COLONY_HEARTBEAT_TIMEOUT_MS')
  const maxBundleBytes = num(process.env.COLONY_MAX_BUNDLE_BYTES, 'COLONY_MAX_BUNDLE_BYTES')
  const maxStateBytes = num(env.COLONY_MAX_STATE_BYTES, 'COLONY_MAX_STATE_BYTES')
  const maxMessagesPerSecond = num(process.env.COLONY_MAX_MSGS_PER_S, 'COLONY_MAX_MSGS_PER_S')
  const helloTimeoutMs = num(process.env.COLONY_HELLO_TIMEOUT_MS, 'COLONY_HELLO_TIMEOUT_MS')
  const defaultTaskTimeoutMs = num(process.env.COLONY_TASK_TIMEOUT_MS, 'COLONY_TASK_TIMEOUT_MS')
  const maxJobLogBytes = num(process.env.COLONY_MAX_JOB_LOG_BYTES, 'COLONY_MAX_JOB_LOG_BYTES')
  const retention = Object.fromEntries(Object.entries({
    detailMs: num(env.COLONY_JOB_DETAIL_MS, 'COLONY_JOB_DETAIL_MS'),
    maxDetailedJobs: num(env.COLONY_MAX_DETAILED_JOBS, 'COLONY_MAX_DETAILED_JOBS'),
    summaryMs: num(env.COLONY_JOB_SUMMARY_MS, 'COLONY_JOB_SUMMARY_MS'),
    maxSummaries: num(env.COLONY_MAX_JOB_SUMMARIES, 'COLONY_MAX_JOB_SUMMARIES'),
    keepSpentRecords: num(env.COLONY_KEEP_SPENT_RECORDS, 'COLONY_KEEP_SPENT_RECORDS'),
    keepStateMs: num(env.COLONY_KEEP_STATE_MS, 'COLONY_KEEP_STATE_MS'),
  }).filter(([, v]) => v !== undefined))
  // Node opens its inspector on SIGUSR1, and an inspector runs code as this process (which holds
  // every token): any listener stops that. Under `colony up` this process is the local peers' too.
  let usr1Said = false
  process.on('SIGUSR1', () => { if (!usr1Said) { usr1Said = true; console.error('colony: ignoring SIGUSR1 (the coordinator never opens an inspector)') } })
  const quotas = Object.fromEntries(Object.entries({
    maxPeersPerToken: num(process.env.COLONY_MAX_PEERS_PER_TOKEN, 'COLONY_MAX_PEERS_PER_TOKEN'),
    maxTasksPerJob: num(process.env.COLONY_MAX_TASKS_PER_JOB, 'COLONY_MAX_TASKS_PER_JOB'),
    maxObjectsPerJob: num(process.env.COLONY_MAX_OBJECTS_PER_JOB, 'COLONY_MAX_OBJECTS_PER_JOB'),
    maxArgBytes: num(process.env.COLONY_MAX_ARG_BYTES, 'COLONY_MAX_ARG_BYTES'),
  }).filter(([, v]) => v !== undefined))
  const webRoots = pageFolders()
  // Deployments (serving) live in the coordinator's process, on its grid as a driver of their own.
  const serving: ServeHost = new ServeHost({
    // In memory (coordinator/src/local-socket.ts): a query's calls cross no socket between the two.
    connect: (): Promise<Grid> => connect(tls ? coord.url : coord.localUrl, { token: coord.tokens.submit, name: 'serving', onLog: false, webSocket: () => coord.localSocket() }),
    dir: store === 'memory' ? undefined : join(dataDir, 'deployments'),
    log: (line) => console.log(`[serving] ${line}`),
  })
  const coord = await startCoordinator({
    ingress: [new ServeIngress(serving)],
    port, host, publicUrl, tls, turn, trustProxy: values['trust-proxy'] || env.COLONY_TRUST_PROXY === '1', dataDir, store, standby: values.standby, reconcileMs, pipelineDepth, heartbeatTimeoutMs, iceServers, webRoots, maxBundleBytes, maxStateBytes, maxMessagesPerSecond, helloTimeoutMs, defaultTaskTimeoutMs, maxJobLogBytes, quotas, retention,
  }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EADDRINUSE') fail(`port ${port} is in use: stop the other coordinator, or pass --port / PORT`)
    if (e.code === 'EADDRNOTAVAIL') fail(`cannot listen on ${host}: this machine has no such address (--host)`)
    if (/public URL|TURN|Redis|leads the store/.test(e.message)) fail(e.message)
    throw e
  })
  void coord.leading.then(() => serving.restore())
  const peers: { close(): Promise<void> }[] = []
  if (withPeers) {
    const { startNodeWorker } = await import('@colony-grid/worker-web/node')
    const n = num(values.peers, 'peers') ?? Math.max(1, availableParallelism() - 1)
    // The operator's own peers: trusted, so they may run jobs' mains.
    // Over TLS they use the public URL, which the certificate names; otherwise the shortest way in.
    const url = tls ? coord.url : coord.localUrl
    for (let i = 0; i < n; i++) peers.push(await startNodeWorker({ url, token: coord.tokens.trusted, executors: 1 }))
  }
  console.log(`Colony coordinator on ${coord.url} (${coord.store.kind} store${coord.store.kind === 'sqlite' ? ` in ${dataDir}` : coord.store.kind === 'redis' ? ` at ${storeUrl}` : ''}${coord.role === 'standby' ? ', standing by' : ''})
  submit token: ${coord.tokens.submit}
  join token:   ${coord.tokens.join}
  trusted join token: ${coord.tokens.trusted}   (for your own machines only: their workers run jobs' mains)
${withPeers ? `  local Node peers: ${peers.length}\n` : ''}
  API:      ${coord.url}/api/peers   (Authorization: Bearer <token>)
  Metrics:  ${coord.url}/metrics
  Join a tab:        ${coord.url}/join#token=${coord.tokens.join}
  Web IDE:           ${coord.url}/ide#token=${coord.tokens.submit}${webRoots.length > 2 ? `
  Scoring demo:      ${coord.url}/demo#token=${coord.tokens.submit}&join=${coord.tokens.join}
  Serving demo:      ${coord.url}/demo#token=${coord.tokens.submit}&join=${coord.tokens.join}&mode=serve` : ''}
  Join a Node peer:  npx colony worker --url ${coord.url} --token ${coord.tokens.join}
  Join your own:     npx colony worker --trusted --url ${coord.url} --token ${coord.tokens.trusted}
  Run a job:         ${coord.url === 'http://127.0.0.1:8787' ? '' : `COLONY_URL=${coord.url} `}npx colony submit ${exampleJob()}${reachHint(coord.url, host)}
Ctrl-C stops.`)
  const stop = async () => {
    for (const p of peers) await p.close().catch(() => {})
    await coord.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

/** `--tls-cert` and `--tls-key`, read; both or neither. */
function readTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (!certFile && !keyFile) return undefined
  if (!certFile || !keyFile) fail('HTTPS needs both --tls-cert FILE and --tls-key FILE (PEM)')
  const read = (f: string, what: string) => { try { return readFileSync(f) } catch (e) { fail(`cannot read the TLS ${what} ${f}: ${(e as Error).message}`) } }
  const tls = { cert: read(certFile, 'certificate'), key: read(keyFile, 'key') }
  // A wrong file would otherwise surface as an OpenSSL stack trace when the server starts.
  try { createSecureContext(tls) } catch (e) { fail(`--tls-cert ${certFile} and --tls-key ${keyFile} are not a PEM certificate and its private key: ${(e as Error).message}`) }
  return tls
}

/** The example job that ships with this package, as a path from here (client/examples/hello.ts in the repository). */
function exampleJob(): string {
  const file = join(dirname(fileURLToPath(import.meta.resolve('@colony-grid/client/package.json'))), 'examples', 'hello.ts')
  return relative(process.cwd(), file) || file
}

/** A line for the operator when other machines cannot reach the printed links as things stand. */
function reachHint(url: string, host: string | undefined): string {
  const loopbackOnly = !host || host === '127.0.0.1' || host === 'localhost' || host === '::1'
  const loopbackUrl = /^https?:\/\/(127\.|localhost|\[::1\])/.test(url)
  if (loopbackOnly && loopbackUrl) return '\n  Only this machine can reach these links: pass --host 0.0.0.0 (and --public-url, or --tls-*) to serve others.'
  if (loopbackOnly) return `\n  Listening on ${host ?? '127.0.0.1'} only: ${url} must be a proxy on this machine that forwards here (or pass --host 0.0.0.0).`
  if (url.startsWith('http:')) return '\n  Plain HTTP: tabs on other machines get no WebGPU and no wasm threads (not a secure context). Serve HTTPS: --tls-cert/--tls-key, or a proxy such as Caddy.'
  return ''
}

async function cmdWorker(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    url: { type: 'string' }, token: { type: 'string' }, executors: { type: 'string' }, 'memory-mb': { type: 'string' },
    capabilities: { type: 'string' }, relay: { type: 'boolean' }, 'ice-relay-only': { type: 'boolean' }, 'rtc-bind': { type: 'string' },
    'store-mb': { type: 'string' }, 'native-ml': { type: 'boolean' }, unconfined: { type: 'boolean' }, 'executor-uid': { type: 'string' },
    trusted: { type: 'boolean' },
  } })
  if (values.executors !== undefined && !num(values.executors, 'executors')) fail('--executors must be at least 1')
  if (values['executor-uid'] !== undefined && !num(values['executor-uid'], 'executor-uid')) fail('--executor-uid must not be 0 (root)')
  const url = values.url ?? process.env.COLONY_URL ?? 'http://127.0.0.1:8787'
  const token = values.token ?? process.env.COLONY_JOIN_TOKEN ?? savedTokens().join
  if (!token) fail('worker needs --token JOIN_TOKEN (colony start prints it)')
  const { startNodeWorker } = await import('@colony-grid/worker-web/node')
  const waiting = setTimeout(() => console.error(`still trying to reach ${url}: is the coordinator running? (retrying; Ctrl-C stops)`), 3000)
  // `url` may list several coordinators (a,b,c): the peer fails over along them.
  const env = process.env
  const peer = await startNodeWorker({
    url, token, executors: num(values.executors, 'executors'), memoryMb: num(values['memory-mb'], 'memory-mb'),
    capabilities: values.capabilities?.split(',').map((c) => c.trim()).filter(Boolean),
    p2p: !(values.relay || env.COLONY_P2P === '0'),
    iceRelayOnly: values['ice-relay-only'] || env.COLONY_ICE_RELAY_ONLY === '1',
    rtcBindAddress: values['rtc-bind'] ?? (env.COLONY_RTC_BIND_ADDRESS || undefined),
    storeMb: num(values['store-mb'], 'store-mb'), nativeMl: values['native-ml'],
    rtcConnectTimeoutMs: num(env.COLONY_RTC_CONNECT_TIMEOUT_MS, 'COLONY_RTC_CONNECT_TIMEOUT_MS'),
    confine: values.unconfined ? 'off' : 'auto', executorUid: num(values['executor-uid'], 'executor-uid'),
  }).catch((e: Error) => fail(e.name === 'ConfinementError' ? e.message : `could not join ${url}: ${e.message}${certificateHint(e.message) ? ` ${certificateHint(e.message)}` : ''}`))
  clearTimeout(waiting)
  console.log(`joined ${peer.coordinatorUrl} as ${peer.peerId}; Ctrl-C leaves`)
  if (values.trusted && !peer.trusted) console.error('colony: --trusted, but the coordinator does not trust this token: jobs\' mains will not run here (use the trusted join token that colony start prints)')
  const leave = async () => { await peer.close(); process.exit(0) }
  process.once('SIGINT', leave)
  process.once('SIGTERM', leave)
}

async function cmdSubmit(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
    url: { type: 'string' }, token: { type: 'string' }, args: { type: 'string' }, name: { type: 'string' }, quiet: { type: 'boolean' },
  } })
  const file = positionals[0]
  if (!file) fail('submit needs a job file: colony submit job.ts')
  if (!existsSync(file)) fail(`no such file: ${file}`)
  let jobArgs: unknown[] = []
  if (values.args) {
    try { jobArgs = JSON.parse(values.args) as unknown[] } catch { fail('--args must be a JSON array, e.g. --args "[10]"') }
    if (!Array.isArray(jobArgs)) fail('--args must be a JSON array')
  }
  const t = target(values)
  const { code, bytes } = await bundleJob(file).catch((e: Error) => fail(e.message))
  const name = values.name ?? file.replace(/^.*\//, '').replace(/\.[cm]?[jt]s$/, '')
  const job = await api(t, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: code, name, args: jobArgs }) }) as { id: string }
  if (!values.quiet) console.error(`submitted ${name} (${(bytes / 1024).toFixed(1)} KiB) as job ${job.id}`)
  let cancelled = false
  process.once('SIGINT', () => { cancelled = true; void api(t, `/api/jobs/${job.id}`, { method: 'DELETE' }).then(() => console.error(`cancelled ${job.id}`)) })
  const final = await followJob(t, job.id)
  if (final.state === 'finished') {
    console.log(JSON.stringify(final.result, null, 2))
    process.exit(0)
  }
  const err = final.error as { message?: string; remoteStack?: string } | undefined
  console.error(`job ${job.id} ${final.state}${cancelled ? ' (by you)' : ''}: ${err?.message ?? ''}`)
  if (err?.remoteStack) console.error(`remote stack:\n${err.remoteStack}`)
  process.exit(1)
}

/** Streams a job's logs (server-sent events) until it ends; returns its final state. */
async function followJob(t: Target, id: string): Promise<{ state: string; result?: unknown; error?: unknown }> {
  const res = await request(t, `/api/jobs/${id}/events`)
  if (!res.ok || !res.body) fail(`could not follow job ${id}: HTTP ${res.status}`)
  const decoder = new TextDecoder()
  let buf = ''
  let last: { state: string } = { state: 'running' }
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true })
    let i: number
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const raw = buf.slice(0, i)
      buf = buf.slice(i + 2)
      const event = /^event: (.*)$/m.exec(raw)?.[1]
      const data = raw.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')
      if (!data) continue
      if (event === 'log') console.log(JSON.parse(data) as string)
      else if (event === 'state') last = JSON.parse(data) as { state: string }
    }
  }
  return last
}

async function cmdStatus(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } } })
  const t = target(values)
  if (positionals[0]) {
    const job = await api(t, `/api/jobs/${positionals[0]}`)
    console.log(JSON.stringify(job, null, 2))
    return
  }
  const peers = await api(t, '/api/peers') as { id: string; kind: string; role: string; capabilities: string[]; load: number; tasksDone: number; address?: string }[]
  const jobs = await api(t, '/api/jobs') as { id: string; name: string; state: string; tasks: Record<string, number> }[]
  if (values.json) { console.log(JSON.stringify({ peers, jobs }, null, 2)); return }
  console.log(`${t.urls[0]}: ${peers.filter((p) => p.role === 'worker').length} worker(s), ${peers.filter((p) => p.role === 'driver').length} driver(s)`)
  for (const p of peers) console.log(`  ${p.id}  ${p.kind.padEnd(7)} ${p.role.padEnd(6)} ${(p.address ?? '').padEnd(15)} load ${p.load.toFixed(2)}  done ${p.tasksDone}  [${p.capabilities.join(', ')}]`)
  console.log(`jobs: ${jobs.length}`)
  for (const j of jobs.slice(-20)) {
    const t = j.tasks
    console.log(`  ${j.id}  ${j.state.padEnd(9)} ${j.name}  tasks: ${t.finished} done, ${t.running} running, ${t.ready + t.waiting} queued, ${t.failed} failed`)
  }
}

/** `colony token create --role submit|join [--trusted] [--label L]`, `colony token list`, `colony token revoke ID` (the operator's token). */
async function cmdToken(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
    url: { type: 'string' }, token: { type: 'string' }, role: { type: 'string' }, label: { type: 'string' }, trusted: { type: 'boolean' },
  } })
  const t = target(values)
  const [action, id] = positionals
  if (action === 'create') {
    if (values.role !== 'submit' && values.role !== 'join') fail('colony token create needs --role submit or --role join')
    if (values.trusted && values.role !== 'join') fail('--trusted is for join tokens: the workers of a trusted join token may run jobs\' mains')
    const made = await api(t, '/api/tokens', { method: 'POST', body: JSON.stringify({ role: values.role, label: values.label ?? '', ...(values.trusted ? { trusted: true } : {}) }) }) as { token: string; id: string }
    console.log(`${made.token}\n(id ${made.id}; revoke it with: colony token revoke ${made.id})`)
  } else if (action === 'list') {
    const list = await api(t, '/api/tokens') as { id: string; role: string; label: string; revoked: boolean; operator: boolean }[]
    for (const t of list) console.log(`  ${t.id}  ${t.role.padEnd(6)} ${t.operator ? 'operator ' : ''}${t.revoked ? 'REVOKED ' : ''}${t.label}`)
  } else if (action === 'revoke' && id) {
    const r = await api(t, `/api/tokens/${id}`, { method: 'DELETE' }) as { peersDropped: number }
    console.log(`revoked ${id}; ${r.peersDropped} connected peer(s) dropped`)
  } else fail('usage: colony token create --role submit|join [--trusted] [--label L] | colony token list | colony token revoke ID')
}

const [cmd, ...rest] = process.argv.slice(2)
const commands: Record<string, (a: string[]) => Promise<void>> = {
  up: (a) => cmdStart(a, true), start: (a) => cmdStart(a, false), worker: cmdWorker, submit: cmdSubmit, status: cmdStatus, token: cmdToken,
  serve: async (a) => {
    const { values, positionals } = parseArgs({ args: a, allowPositionals: true, options: { url: { type: 'string' }, token: { type: 'string' } } })
    if (positionals.length === 0) fail(`usage: ${SERVE_USAGE}`)
    await cmdServe(target(values), positionals[0], positionals[1])
  },
}
if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help' || rest.includes('--help')) { console.log(HELP); process.exit(cmd ? 0 : 2) }
const run = commands[cmd]
if (!run) fail(`unknown command '${cmd}'\n\n${HELP}`)
run(rest).catch((e: NodeJS.ErrnoException) => {
  if (e.code?.startsWith('ERR_PARSE_ARGS')) fail(`${e.message}\n\n${HELP}`)
  fail(e.stack ?? String(e))
})
