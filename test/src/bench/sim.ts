/**
 * The peer simulator's figures for `npm run bench -- --only sim` (sim/figures.ts): 1,000 simulated
 * peers from 4 processes against a coordinator of their own (memory store), and 10 against another;
 * tasks/s in 3 rounds of 20,000 no-op tasks each, in turns; the idle CPU over 10 s; false deaths over
 * 30 s of saturated CPU, and after the coordinator was frozen for 20 s (past the 15 s heartbeat timeout).
 */
import { runSimFigures, type SimFigures } from '../sim/figures.js'

export function simFigures(): Promise<SimFigures> {
  return runSimFigures({ peers: 1000, fewPeers: 10, tasks: 20_000, rounds: 3, processes: 4, idleSeconds: 10, saturateSeconds: 30, freezeSeconds: 20 })
}
