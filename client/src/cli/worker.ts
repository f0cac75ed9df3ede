/** `colony worker`: join this machine to a grid as a Node peer, until Ctrl-C. */
import type { Command } from 'commander'
import { certificateHint, fail, num, savedTokens } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { helpAfter, subcommand, wholeNumber } from './program.js'

interface WorkerOptions {
  url?: string; token?: string; executors?: number; memoryMb?: number; capabilities?: string; relay?: boolean; iceRelayOnly?: boolean
  rtcBind?: string; storeMb?: number; nativeMl?: boolean; unconfined?: boolean; executorUid?: number; trusted?: boolean
}

export function registerWorker(program: Command): void {
  const cmd = subcommand(program, 'worker', 'join this machine to a grid as a Node peer; Ctrl-C leaves')
    .option('--url <url>', 'the coordinator, or a grid\'s coordinators comma-separated, to fail over along (default: $COLONY_URL, else http://127.0.0.1:8787)')
    .option('--token <token>', 'a join token (default: $COLONY_JOIN_TOKEN, else .colony/tokens.json)')
    .option('--executors <n>', 'how many tasks run at once (default: the cores)', wholeNumber)
    .option('--memory-mb <mb>', 'each executor\'s memory cap', wholeNumber)
    .option('--store-mb <mb>', 'the bytes of objects this peer holds at most (default 2048)', wholeNumber)
    .option('--capabilities <list>', 'what tasks may ask for, comma-separated (a,b)')
    .option('--relay', 'move objects through the coordinator instead of WebRTC')
    .option('--ice-relay-only', 'WebRTC through TURN only')
    .option('--rtc-bind <addr>', 'the address WebRTC binds to')
    .option('--native-ml', 'run ONNX models with onnxruntime-node')
    .option('--trusted', 'this is the operator\'s machine, joining with the trusted join token: its workers run jobs\' mains')
    .option('--executor-uid <uid>', 'whom a root peer runs executors as (default 65534)', wholeNumber)
    .option('--unconfined', 'run executors without namespaces where they are unavailable: job code could then signal this process and reach your network')
    .addHelpText('after', `
Job code runs in executors with namespaces of their own (Linux: no signals to other processes, no
network, another uid when run as root) and a memory cap. Where that is impossible the worker does not
start; --unconfined runs it anyway.`)
  helpAfter(cmd, [
    'colony worker --url https://grid.example.org --token JOIN_TOKEN --executors 4',
    'colony worker --trusted --url http://10.0.0.2:8787 --token TRUSTED_JOIN_TOKEN',
    'colony worker --url https://a.example.org,https://b.example.org --token JOIN_TOKEN   # fails over',
  ]).action(cmdWorker)
}

async function cmdWorker(values: WorkerOptions): Promise<void> {
  if (values.executors === 0) fail('--executors must be at least 1')
  if (values.executorUid === 0) fail('--executor-uid must not be 0 (root)')
  const url = values.url ?? process.env.COLONY_URL ?? 'http://127.0.0.1:8787'
  const token = values.token ?? process.env.COLONY_JOIN_TOKEN ?? savedTokens().join
  if (!token) fail('worker needs --token JOIN_TOKEN (colony start prints it)')
  const { startNodeWorker } = await import('@colony-grid/worker-web/node')
  const waiting = setTimeout(() => console.error(`still trying to reach ${url}: is the coordinator running? (retrying; Ctrl-C stops)`), 3000)
  // `url` may list several coordinators (a,b,c): the peer fails over along them.
  const env = process.env
  const peer = await startNodeWorker({
    url, token, executors: values.executors, memoryMb: values.memoryMb,
    capabilities: values.capabilities?.split(',').map((c) => c.trim()).filter(Boolean),
    p2p: !(values.relay || env.COLONY_P2P === '0'),
    iceRelayOnly: values.iceRelayOnly || env.COLONY_ICE_RELAY_ONLY === '1',
    rtcBindAddress: values.rtcBind ?? (env.COLONY_RTC_BIND_ADDRESS || undefined),
    storeMb: values.storeMb, nativeMl: values.nativeMl,
    rtcConnectTimeoutMs: num(env.COLONY_RTC_CONNECT_TIMEOUT_MS, 'COLONY_RTC_CONNECT_TIMEOUT_MS'),
    confine: values.unconfined ? 'off' : 'auto', executorUid: values.executorUid,
  }).catch((e: Error) => {
    if (e.name === 'ConfinementError') fail(e.message)
    // A refused join token and an unreachable coordinator exit as every command's do (4 and 3).
    const code = /token/i.test(e.message) ? EXIT.refused : EXIT.unreachable
    fail(`could not join ${url}: ${e.message}${certificateHint(e.message) ? ` ${certificateHint(e.message)}` : ''}`, code)
  })
  clearTimeout(waiting)
  console.log(`joined ${peer.coordinatorUrl} as ${peer.peerId}; Ctrl-C leaves`)
  if (values.trusted && !peer.trusted) console.error('colony: --trusted, but the coordinator does not trust this token: jobs\' mains will not run here (use the trusted join token that colony start prints)')
  const leave = async () => { await peer.close(); process.exit(0) }
  process.once('SIGINT', leave)
  process.once('SIGTERM', leave)
}
