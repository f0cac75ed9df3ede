/**
 * Model selection behind one deployment name (Clipper §5), driven by feedback: the true label of
 * a query, sent after its answer.
 * - `exp3` sends each query to one version, drawn by weight, and learns only from the version that
 *   answered (a bandit). Weights are kept as logarithms, and no version falls more than `floor`
 *   below the best: a version that was bad and became the best again (or the reverse) is followed
 *   within a bounded number of feedbacks, not after as many as it took to fall.
 * - `exp4` sends each query to every version and answers with their outputs weighted (an
 *   ensemble), with a confidence: the weight of the versions that agree with the answer. Each
 *   feedback updates every version that answered.
 * - `fixed` sends every query to the first version.
 */
export type SelectionName = 'fixed' | 'exp3' | 'exp4'

export interface SelectionPolicy {
  readonly name: SelectionName
  /** The versions a query goes to now. */
  choose(): string[]
  /** The answer from the versions that answered in time (at least one), and how sure it is (Exp4). */
  combine(outputs: ReadonlyMap<string, Float32Array>): { output: Float32Array; confidence?: number }
  /** A query's true label, and the class each version that answered it predicted. */
  feedback(predicted: ReadonlyMap<string, number>, label: number): void
  /** The share of queries each version gets (Exp3) or its weight in the answer (Exp4). */
  shares(): Record<string, number>
}

export interface BanditOptions {
  /** Exploration: every version gets at least gamma / versions of the queries (Exp3). Default 0.06. */
  gamma?: number
  /** Learning rate of the weights. Default 0.1. */
  eta?: number
  /** How far (natural log) below the best a weight may fall. Default 8. */
  floor?: number
  /** Random numbers in [0, 1), for tests that need a fixed sequence. */
  random?: () => number
}

/** The index of the largest value: the class a row of outputs predicts. */
export function argmax(v: Float32Array): number {
  let best = 0
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i
  return best
}

abstract class LogWeights {
  protected readonly logw: Map<string, number>
  protected readonly eta: number
  protected readonly floor: number
  constructor(versions: readonly string[], opts: BanditOptions) {
    this.logw = new Map(versions.map((v) => [v, 0]))
    this.eta = opts.eta ?? 0.1
    this.floor = opts.floor ?? 8
  }

  /** Weights over their sum. */
  protected normalised(): Map<string, number> {
    let total = 0
    const w = new Map<string, number>()
    for (const [v, l] of this.logw) { const e = Math.exp(l); w.set(v, e); total += e }
    for (const [v, e] of w) w.set(v, e / total)
    return w
  }

  protected raise(version: string, by: number): void {
    this.logw.set(version, (this.logw.get(version) ?? 0) + by)
  }

  /** The best weight back to 0, and none below -floor. */
  protected rebase(): void {
    const top = Math.max(...this.logw.values())
    for (const [v, l] of this.logw) this.logw.set(v, Math.max(-this.floor, l - top))
  }
}

export class Exp3 extends LogWeights implements SelectionPolicy {
  readonly name = 'exp3' as const
  private readonly gamma: number
  private readonly random: () => number

  constructor(versions: readonly string[], opts: BanditOptions = {}) {
    super(versions, opts)
    this.gamma = opts.gamma ?? 0.06
    this.random = opts.random ?? Math.random
  }

  shares(): Record<string, number> {
    const k = this.logw.size, out: Record<string, number> = {}
    for (const [v, w] of this.normalised()) out[v] = (1 - this.gamma) * w + this.gamma / k
    return out
  }

  choose(): string[] {
    const shares = Object.entries(this.shares())
    let r = this.random()
    for (const [v, p] of shares) { if (r < p) return [v]; r -= p }
    return [shares[shares.length - 1][0]]
  }

  combine(outputs: ReadonlyMap<string, Float32Array>): { output: Float32Array } {
    return { output: outputs.values().next().value! }
  }

  feedback(predicted: ReadonlyMap<string, number>, label: number): void {
    const shares = this.shares()
    for (const [v, p] of predicted) {
      if (!(v in shares)) continue
      // The reward over the chance the version had of being drawn: unbiased for every version.
      if (p === label) this.raise(v, this.eta / shares[v])
    }
    this.rebase()
  }
}

export class Exp4 extends LogWeights implements SelectionPolicy {
  readonly name = 'exp4' as const

  shares(): Record<string, number> { return Object.fromEntries(this.normalised()) }

  choose(): string[] { return [...this.logw.keys()] }

  combine(outputs: ReadonlyMap<string, Float32Array>): { output: Float32Array; confidence: number } {
    const w = this.normalised()
    let width = 0, total = 0
    for (const [v, o] of outputs) { width = Math.max(width, o.length); total += w.get(v) ?? 0 }
    const output = new Float32Array(width)
    for (const [v, o] of outputs) {
      const share = (w.get(v) ?? 0) / (total || 1)
      for (let i = 0; i < o.length; i++) output[i] += share * o[i]
    }
    const answer = argmax(output)
    let agree = 0
    for (const [v, o] of outputs) if (argmax(o) === answer) agree += (w.get(v) ?? 0) / (total || 1)
    return { output, confidence: agree }
  }

  feedback(predicted: ReadonlyMap<string, number>, label: number): void {
    // Every version that answered is scored (full information): a wrong answer costs eta.
    for (const [v, p] of predicted) if (this.logw.has(v) && p !== label) this.raise(v, -this.eta)
    this.rebase()
  }
}

export class FixedSelection implements SelectionPolicy {
  readonly name = 'fixed' as const
  constructor(private readonly version: string) {}
  choose(): string[] { return [this.version] }
  combine(outputs: ReadonlyMap<string, Float32Array>): { output: Float32Array } { return { output: outputs.get(this.version) ?? outputs.values().next().value! } }
  feedback(): void { /* nothing to learn */ }
  shares(): Record<string, number> { return { [this.version]: 1 } }
}

export function selectionPolicy(name: SelectionName, versions: readonly string[], opts?: BanditOptions): SelectionPolicy {
  if (name === 'exp3') return new Exp3(versions, opts)
  if (name === 'exp4') return new Exp4(versions, opts ?? {})
  if (name === 'fixed') return new FixedSelection(versions[0])
  throw new RangeError(`selection must be 'fixed', 'exp3' or 'exp4' (got ${String(name)})`)
}
