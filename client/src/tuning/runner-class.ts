/**
 * The trial runner's actor class. An actor class ships to peers as its source text, so this one is
 * made from text: the peer library (runner.ts and the training library, bundled at build time) sits
 * in its constructor, and its methods hand over to the library's TrialRunnerCore. Peers compile it
 * as they compile any inline class; nothing needs installing on them.
 */
import type { ObjectRef } from '@colony-grid/shared'
import { PEER_LIBRARY } from './peer-library.generated.js'
import type { ReportEvent, RunOutcome, RunnerDecision, TrialSpec } from './runner.js'

export interface TrialRunner {
  run(spec: TrialSpec): Promise<RunOutcome>
  poll(waitMs: number): Promise<ReportEvent[]>
  decide(trial: string, decision: RunnerDecision): boolean
  describe(): { peer: string; backend: string }
}

export type TrialRunnerClass = new (trainableSource: string, values: ObjectRef<Record<string, unknown>> | Record<string, unknown>) => TrialRunner

let made: TrialRunnerClass | undefined

export function trialRunnerClass(): TrialRunnerClass {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  made ??= new Function(`return class ColonyTrialRunner {
  constructor(trainableSource, values) {
    ${PEER_LIBRARY.replace(/^"use strict";/, '')}
    this.core = new ColonyPeerLibrary.TrialRunnerCore(trainableSource, values)
  }
  run(spec) { return this.core.run(spec, colony.grid, colony.peerId) }
  poll(waitMs) { return this.core.poll(waitMs) }
  decide(trial, decision) { return this.core.decide(trial, decision) }
  describe() { return { peer: colony.peerId, backend: 'js' } }
}`)() as TrialRunnerClass
  return made
}
