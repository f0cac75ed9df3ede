/**
 * Faults injected on purpose, so the chaos run (test/src/chaos/) can show that each of its
 * figures goes bad when the property it measures breaks. Off unless a process starts with
 * `COLONY_INJECT_FAULTS=name1,name2` (read once, here); an unknown name stops the process at
 * start. A coordinator or peer with any fault on says so loudly. Never set it on a real grid.
 *
 * Each fault guards one line, where its name says; hot paths read a plain boolean of FAULTS.
 */

export const FAULT_DESCRIPTIONS = {
  'fail-lost-peer-tasks': 'the coordinator fails a task whose peer (or executor) was lost, instead of retrying it (control/task-results.ts retryOrFail)',
  'report-results-twice': 'a worker sends each task\'s result twice (peer.ts sendDone)',
  'apply-duplicate-results': 'the coordinator applies a result for a task that already has one (control/task-results.ts done: no duplicate check)',
  'restart-reapplies': 'a restarted coordinator runs and records again the tasks its store has as finished (control/tasks.ts initialize)',
  'takeover-fails-unfinished': 'a coordinator that loads the tables (a restart, or a standby taking over) fails the tasks they have unfinished, instead of waiting for their peers (recovery)',
  'retention-keeps-everything': 'a coordinator never drops what finished jobs leave (control/retention.ts sweep)',
  'accept-wrong-replica': 'a replicated task accepts the first replica\'s answer, without a quorum (control/quorum-manager.ts judge)',
  'serve-expired-grants': 'a holder serves on a grant whose time is up (data-plane.ts serve)',
  'handler-throws': 'the coordinator\'s handler of a \'pause\' message throws (control/control-plane.ts handler table)',
  'http-handler-throws': 'the coordinator\'s GET /api/peers throws (server.ts)',
  'exit-on-malformed-frame': 'the coordinator exits on a frame it cannot decode (server.ts)',
  'poison-float-arrays': 'a worker multiplies by -100 every Float32Array its tasks send on (in the arguments of the calls they make, and in the objects they put), as a volunteer sending poisoned gradients would (peer.ts grid)',
  'slow-worker': 'a worker reports each task\'s outcome only after three times its run time again, as a device four times slower would (peer.ts done)',
} as const

export type FaultName = keyof typeof FAULT_DESCRIPTIONS

function parseFaults(spec: string): FaultName[] {
  const names = spec.split(',').map((s) => s.trim()).filter(Boolean)
  for (const n of names) {
    if (!(n in FAULT_DESCRIPTIONS)) {
      throw new Error(`COLONY_INJECT_FAULTS names an unknown fault '${n.slice(0, 60)}'; the faults are: ${Object.keys(FAULT_DESCRIPTIONS).join(', ')}`)
    }
  }
  return [...new Set(names)] as FaultName[]
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env

/** The faults this process runs with (COLONY_INJECT_FAULTS); empty on every real grid. */
export const INJECTED_FAULTS: readonly FaultName[] = Object.freeze(parseFaults(env?.COLONY_INJECT_FAULTS ?? ''))

const on = (name: FaultName): boolean => INJECTED_FAULTS.includes(name)

/** One boolean per fault, for the line it guards. */
export const FAULTS = Object.freeze({
  failLostPeerTasks: on('fail-lost-peer-tasks'),
  reportResultsTwice: on('report-results-twice'),
  applyDuplicateResults: on('apply-duplicate-results'),
  restartReapplies: on('restart-reapplies'),
  acceptWrongReplica: on('accept-wrong-replica'),
  takeoverFailsUnfinished: on('takeover-fails-unfinished'),
  retentionKeepsEverything: on('retention-keeps-everything'),
  serveExpiredGrants: on('serve-expired-grants'),
  handlerThrows: on('handler-throws'),
  httpHandlerThrows: on('http-handler-throws'),
  exitOnMalformedFrame: on('exit-on-malformed-frame'),
  poisonFloatArrays: on('poison-float-arrays'),
  slowWorker: on('slow-worker'),
})

/** What a process with faults on says at start; undefined when none is on. */
export function faultWarning(): string | undefined {
  if (INJECTED_FAULTS.length === 0) return undefined
  return `WARNING: FAULTS INJECTED ON PURPOSE (COLONY_INJECT_FAULTS), this process is broken for a test: ${INJECTED_FAULTS.map((n) => `${n} (${FAULT_DESCRIPTIONS[n]})`).join('; ')}`
}
