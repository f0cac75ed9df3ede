/**
 * `colony start` (a coordinator) and `colony up` (a coordinator and local Node peers: what npm start runs).
 * Both run until Ctrl-C.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createSecureContext } from 'node:tls'
import type { Command } from 'commander'
import type { Grid } from '@colony-grid/worker-web'
import { fail, num } from '../cli-target.js'
import { connect } from '../connect.js'
import { ServeHost } from '../serving/host.js'
import { ServeIngress } from '../serving/http.js'
import { helpAfter, subcommand, wholeNumber } from './program.js'

interface StartOptions {
  port?: number; data?: string; memory?: boolean; peers?: number; host?: string; store?: string; standby?: boolean
  publicUrl?: string; tlsCert?: string; tlsKey?: string; trustProxy?: boolean
}

const ENVIRONMENT_HELP = `
Environment: COLONY_HOST, COLONY_PUBLIC_URL, COLONY_TLS_CERT, COLONY_TLS_KEY, COLONY_TRUST_PROXY=1,
COLONY_STORE, PORT; TURN: COLONY_TURN_SECRET, COLONY_TURN_URLS, COLONY_TURN_TTL_S; the log:
COLONY_LOG_FORMAT (json or pretty; default pretty at a terminal) and COLONY_LOG_LEVEL (default info);
limits and retention: see the README's "Run a grid for other machines" and its settings tables.`

/** The options `start` and `up` share. */
function coordinatorOptions(cmd: Command): Command {
  return cmd
    .option('--port <port>', 'the port to listen on (default: $PORT, else 8787; 0: any free one)', wholeNumber)
    .option('--data <dir>', 'where the SQLite store and the tokens live', '.colony')
    .option('--memory', 'keep nothing: an in-memory store')
    .option('--store <url>', 'keep the tables in Redis instead, redis://HOST:PORT[/DB] (or $COLONY_STORE)')
    .option('--standby', 'with a Redis store: stand by while another coordinator leads it, and take over when it dies')
    .option('--host <addr>', 'listen on ADDR (default 127.0.0.1, this machine only; 0.0.0.0: every address)')
    .option('--public-url <url>', 'the URL other machines use (https://grid.example.org behind a TLS proxy); every printed link uses it')
    .option('--tls-cert <file>', 'serve HTTPS and WSS with this PEM certificate (with --tls-key)')
    .option('--tls-key <file>', 'the certificate\'s PEM private key')
    .option('--trust-proxy', 'behind a reverse proxy on this machine: peers\' addresses from X-Forwarded-For')
    .addHelpText('after', ENVIRONMENT_HELP)
}

export function registerStart(program: Command): void {
  helpAfter(coordinatorOptions(subcommand(program, 'start', 'run the coordinator alone (its SQLite store in --data); Ctrl-C stops it')), [
    'colony start                                   # http://127.0.0.1:8787, tokens in .colony/tokens.json',
    'colony start --host 0.0.0.0 --public-url https://grid.example.org --trust-proxy',
    'colony start --store redis://10.0.0.5:6379 --standby',
  ], false).action((opts: StartOptions) => cmdStart(opts, false))
  helpAfter(coordinatorOptions(subcommand(program, 'up', 'run the coordinator and local Node peers (what npm start runs); Ctrl-C stops them'))
    .option('--peers <n>', 'how many local Node peers, one executor each (default: cores - 1, at least 1)', wholeNumber), [
    'colony up',
    'colony up --peers 4 --port 9000',
  ], false).action((opts: StartOptions) => cmdStart(opts, true))
}

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
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    fail(`this command runs a coordinator, and @colony-grid/coordinator is not installed (an install of @colony-grid/client alone leaves it out). Install it next to the client:\n  npm install @colony-grid/coordinator@${version}`)
  }
}

async function cmdStart(values: StartOptions, withPeers: boolean): Promise<void> {
  const env = process.env
  const host = values.host ?? (env.COLONY_HOST || undefined)
  const publicUrl = values.publicUrl ?? (env.COLONY_PUBLIC_URL || undefined)
  const tls = readTls(values.tlsCert ?? (env.COLONY_TLS_CERT || undefined), values.tlsKey ?? (env.COLONY_TLS_KEY || undefined))
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
  const { startCoordinator, setHeapGrowth, createLogger, lineLogger, logSettingsFromEnv } = await loadCoordinator()
  // Checked here, so that a wrong value is a usage error (exit 2) that says what is allowed, not a stack.
  try { logSettingsFromEnv() } catch (e) { fail((e as Error).message) }
  // One log for everything this process says: the coordinator's, serving's and (colony up) the local peers'.
  const root = createLogger({ component: null })
  const logger = root.child({ component: 'coordinator' })
  const heap = setHeapGrowth(env.COLONY_HEAP_GROWTH_PERCENT)
  if ('error' in heap) fail(heap.error)
  const port = values.port ?? num(env.PORT, 'PORT') ?? 8787
  const dataDir = resolve(values.data ?? '.colony')
  const reconcileMs = num(env.COLONY_RECONCILE_MS, 'COLONY_RECONCILE_MS')
  const pipelineDepth = num(env.COLONY_PIPELINE_DEPTH, 'COLONY_PIPELINE_DEPTH')
  let iceServers: { urls: string | string[]; username?: string; credential?: string }[] | undefined
  if (env.COLONY_ICE_SERVERS) {
    try { iceServers = JSON.parse(env.COLONY_ICE_SERVERS) as typeof iceServers } catch { fail('COLONY_ICE_SERVERS must be a JSON array of { urls, username?, credential? }') }
  }
  const heartbeatTimeoutMs = num(env.COLONY_HEARTBEAT_TIMEOUT_MS, 'COLONY_HEARTBEAT_TIMEOUT_MS')
  const maxBundleBytes = num(env.COLONY_MAX_BUNDLE_BYTES, 'COLONY_MAX_BUNDLE_BYTES')
  const maxStateBytes = num(env.COLONY_MAX_STATE_BYTES, 'COLONY_MAX_STATE_BYTES')
  const maxMessagesPerSecond = num(env.COLONY_MAX_MSGS_PER_S, 'COLONY_MAX_MSGS_PER_S')
  const helloTimeoutMs = num(env.COLONY_HELLO_TIMEOUT_MS, 'COLONY_HELLO_TIMEOUT_MS')
  const defaultTaskTimeoutMs = num(env.COLONY_TASK_TIMEOUT_MS, 'COLONY_TASK_TIMEOUT_MS')
  const maxJobLogBytes = num(env.COLONY_MAX_JOB_LOG_BYTES, 'COLONY_MAX_JOB_LOG_BYTES')
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
  process.on('SIGUSR1', () => { if (!usr1Said) { usr1Said = true; logger.warn('ignoring SIGUSR1 (the coordinator never opens an inspector)') } })
  const quotas = Object.fromEntries(Object.entries({
    maxPeersPerToken: num(env.COLONY_MAX_PEERS_PER_TOKEN, 'COLONY_MAX_PEERS_PER_TOKEN'),
    maxTasksPerJob: num(env.COLONY_MAX_TASKS_PER_JOB, 'COLONY_MAX_TASKS_PER_JOB'),
    maxObjectsPerJob: num(env.COLONY_MAX_OBJECTS_PER_JOB, 'COLONY_MAX_OBJECTS_PER_JOB'),
    maxArgBytes: num(env.COLONY_MAX_ARG_BYTES, 'COLONY_MAX_ARG_BYTES'),
  }).filter(([, v]) => v !== undefined))
  const webRoots = pageFolders()
  // Deployments (serving) live in the coordinator's process, on its grid as a driver of their own.
  const serving: ServeHost = new ServeHost({
    // In memory (coordinator/src/local-socket.ts): a query's calls cross no socket between the two.
    connect: (): Promise<Grid> => connect(tls ? coord.url : coord.localUrl, { token: coord.tokens.submit, name: 'serving', onLog: false, webSocket: () => coord.localSocket() }),
    dir: store === 'memory' ? undefined : join(dataDir, 'deployments'),
    log: lineLogger(root.child({ component: 'serving' })),
  })
  const coord = await startCoordinator({
    ingress: [new ServeIngress(serving)], logger,
    port, host, publicUrl, tls, turn, trustProxy: values.trustProxy || env.COLONY_TRUST_PROXY === '1', dataDir, store, standby: values.standby, reconcileMs, pipelineDepth, heartbeatTimeoutMs, iceServers, webRoots, maxBundleBytes, maxStateBytes, maxMessagesPerSecond, helloTimeoutMs, defaultTaskTimeoutMs, maxJobLogBytes, quotas, retention,
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
    const n = values.peers ?? Math.max(1, availableParallelism() - 1)
    // The operator's own peers: trusted, so they may run jobs' mains.
    // Over TLS they use the public URL, which the certificate names; otherwise the shortest way in.
    const url = tls ? coord.url : coord.localUrl
    const log = lineLogger(root.child({ component: 'peer' }))
    for (let i = 0; i < n; i++) peers.push(await startNodeWorker({ url, token: coord.tokens.trusted, executors: 1, log }))
  }
  // The banner is for a person: on stdout at a terminal; else on stderr, so that stdout is the log's JSON lines alone.
  const banner = (text: string) => (process.stdout.isTTY ? process.stdout : process.stderr).write(`${text}\n`)
  banner(`Colony coordinator on ${coord.url} (${coord.store.kind} store${coord.store.kind === 'sqlite' ? ` in ${dataDir}` : coord.store.kind === 'redis' ? ` at ${storeUrl}` : ''}${coord.role === 'standby' ? ', standing by' : ''})
  submit token: ${coord.tokens.submit}
  join token:   ${coord.tokens.join}
  trusted join token: ${coord.tokens.trusted}   (for your own machines only: their workers run jobs' mains)
${withPeers ? `  local Node peers: ${peers.length}\n` : ''}
  API:      ${coord.url}/api/peers   (Authorization: Bearer <token>)
  Metrics:  ${coord.url}/metrics
  Join a tab:        ${coord.url}/join#token=${coord.tokens.join}
  Dashboard:         ${coord.url}/dashboard#token=${coord.tokens.submit}
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
