/** What a scoring run of the digits shows at the end: accuracy, the confusion matrix, and the speed-up over the fastest peer alone. */
import type { PeerContribution, ScoringResult } from '@colony-grid/client/browser'

export interface DigitsReport {
  accuracy: number
  /** On the digits training never saw. */
  heldOutAccuracy: number
  /** confusion[true][predicted] counts. */
  confusion: number[][]
  rowsPerSecond: number
  /** The fastest peer scoring alone (timed on its own, with every other peer idle), when that was measured. */
  fastestAlone?: PeerRate
  /** This run's rate over the fastest peer's rate alone; NaN when that was not measured. */
  speedup: number
  peers: PeerContribution[]
}

/** The index of each row's largest value: the predicted class. */
export function argmaxRows(probs: Float32Array, width: number): Uint8Array {
  const out = new Uint8Array(probs.length / width)
  for (let i = 0; i < out.length; i++) {
    let best = 0
    for (let k = 1; k < width; k++) if (probs[i * width + k] > probs[i * width + best]) best = k
    out[i] = best
  }
  return out
}

/** A peer's rate scoring alone, in rows per second. */
export interface PeerRate { peer: string; rowsPerSecond: number }

/**
 * `alone`: each peer's rate when it scored by itself (a solo calibration run). A peer's share of a
 * shared run is no measure of it alone: peers on one machine slow each other down.
 */
export function digitsReport(result: ScoringResult, labels: Uint8Array, heldOutFrom: number, alone: readonly PeerRate[] = []): DigitsReport {
  const predicted = argmaxRows(result.data, result.shape[1])
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0))
  let right = 0, heldRight = 0
  for (let i = 0; i < predicted.length; i++) {
    confusion[labels[i]][predicted[i]]++
    if (predicted[i] === labels[i]) { right++; if (i >= heldOutFrom) heldRight++ }
  }
  const fastestAlone = alone.filter((a) => a.rowsPerSecond > 0 && Number.isFinite(a.rowsPerSecond))
    .reduce<PeerRate | undefined>((best, a) => (!best || a.rowsPerSecond > best.rowsPerSecond ? a : best), undefined)
  return {
    accuracy: right / predicted.length,
    heldOutAccuracy: predicted.length > heldOutFrom ? heldRight / (predicted.length - heldOutFrom) : NaN,
    confusion, rowsPerSecond: result.rowsPerSecond, fastestAlone,
    speedup: fastestAlone ? result.rowsPerSecond / fastestAlone.rowsPerSecond : NaN, peers: result.peers,
  }
}
