/**
 * Result validation by redundancy (BOINC's idea): a task with `replicas: k` runs on k
 * distinct peers, and a result is accepted only when `quorum` of them agree. This module
 * says when results agree; peers that disagree with an accepted result lose reputation
 * (reputation.ts).
 */
import { decodeValue, type ResultOut, type SerializedError } from '@colony-grid/shared'

/** What one replica said: its results, or the error its code threw. */
export interface Vote { replica: string; peer: string; results?: ResultOut[]; error?: SerializedError }

/** `tolerance`: numbers (also inside arrays, typed arrays and objects) agree within this, absolute or relative. */
export interface Comparator { tolerance?: number }

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function close(a: number, b: number, tol: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b)
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b))
}

/** Deep equality of decoded values, numbers within `tol`. */
function valuesAgree(a: unknown, b: unknown, tol: number): boolean {
  if (typeof a === 'number' && typeof b === 'number') return close(a, b, tol)
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    const x = a as unknown as ArrayLike<number>, y = b as unknown as ArrayLike<number>
    if (a.constructor !== b.constructor || x.length !== y.length) return false
    for (let i = 0; i < x.length; i++) if (!close(Number(x[i]), Number(y[i]), tol)) return false
    return true
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => valuesAgree(v, b[i], tol))
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a), kb = Object.keys(b)
    return ka.length === kb.length && ka.every((k) => valuesAgree((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], tol))
  }
  return Object.is(a, b)
}

function resultsAgree(a: ResultOut, b: ResultOut, cmp: Comparator): boolean {
  if (a.inline && b.inline) {
    if (bytesEqual(a.inline, b.inline)) return true
    if (cmp.tolerance === undefined) return false
    try { return valuesAgree(decodeValue(a.inline), decodeValue(b.inline), cmp.tolerance) } catch { return false }
  }
  // Large results stay on their peers; they agree when the hashes their peers reported match.
  return !a.inline && !b.inline && !!a.hash && a.hash === b.hash && a.size === b.size
}

export function votesAgree(a: Vote, b: Vote, cmp: Comparator): boolean {
  if (a.error || b.error) return !!a.error && !!b.error && a.error.type === b.error.type && a.error.message === b.error.message
  const ra = a.results ?? [], rb = b.results ?? []
  return ra.length === rb.length && ra.every((r, i) => resultsAgree(r, rb[i], cmp))
}

/** The largest set of votes that agree with each other (each compared with the set's first). */
export function largestAgreement(votes: Vote[], cmp: Comparator): Vote[] {
  const groups: Vote[][] = []
  for (const v of votes) {
    const g = groups.find((x) => votesAgree(x[0], v, cmp))
    if (g) g.push(v); else groups.push([v])
  }
  return groups.reduce<Vote[]>((best, g) => (g.length > best.length ? g : best), [])
}
