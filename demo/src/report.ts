/** What a scoring run of the digits shows at the end: accuracy, the confusion matrix, and the speed-up over one peer. */
import type { PeerContribution, ScoringResult } from '@colony-grid/client/browser'

export interface DigitsReport {
  accuracy: number
  /** On the digits training never saw. */
  heldOutAccuracy: number
  /** confusion[true][predicted] counts. */
  confusion: number[][]
  rowsPerSecond: number
  /** The fastest peer's own rate: its rows over the time it was busy with this run. */
  onePeerRowsPerSecond: number
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

export function digitsReport(result: ScoringResult, labels: Uint8Array, heldOutFrom: number): DigitsReport {
  const predicted = argmaxRows(result.data, result.shape[1])
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0))
  let right = 0, heldRight = 0
  for (let i = 0; i < predicted.length; i++) {
    confusion[labels[i]][predicted[i]]++
    if (predicted[i] === labels[i]) { right++; if (i >= heldOutFrom) heldRight++ }
  }
  const onePeer = Math.max(...result.peers.map((p) => p.rows / (p.activeMs / 1000)).filter(Number.isFinite), 0)
  return {
    accuracy: right / predicted.length,
    heldOutAccuracy: predicted.length > heldOutFrom ? heldRight / (predicted.length - heldOutFrom) : NaN,
    confusion, rowsPerSecond: result.rowsPerSecond, onePeerRowsPerSecond: onePeer,
    speedup: onePeer > 0 ? result.rowsPerSecond / onePeer : NaN, peers: result.peers,
  }
}
