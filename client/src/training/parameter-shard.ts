/**
 * One shard of the parameter server: a slice of the model's trainable weights, flat, and the
 * optimizer's state for it. Workers pull the slice (only when it changed since their last pull)
 * and push their gradient's slice; every `window` pushes (the live workers' count, set by the
 * driver) are combined, by mean or robustly, and applied as one update. Its state goes into the
 * grid (two copies) every `checkpointEvery` updates, and a shard re-created after its peer died
 * (`maxRestarts`) takes up from there.
 *
 * It ships to peers as source, so it stands alone: no imports, only the `colony` global.
 */
import type { Grid } from '@colony-grid/worker-web'
import type { ObjectRef } from '@colony-grid/shared'
import type { Aggregation, OptimizerSpec, Wire } from './types.js'

declare const colony: { grid: Grid; peerId: string }

export interface ShardOptions {
  shard: number
  optimizer: OptimizerSpec
  aggregate: Aggregation
  clipNorm?: number
  window: number
  checkpointEvery: number
  wire: Wire
}

interface ShardState { weights: Float32Array; m: Float32Array; v: Float32Array; version: number; updates: number }

export class ColonyParameterShard {
  declare private s: ShardState
  declare private readonly opts: ShardOptions
  declare private window: number
  declare private pending: Float32Array[]
  /** The last two states put in the grid, newest first: the newest may not have its second copy yet when the peer dies. */
  declare private saved: ObjectRef<ShardState>[]
  declare private savedVersion: number
  /** Pushes dropped whole by the trimmed mean as outliers. */
  declare private dropped: number
  declare private epoch: number

  /** `initial`: every trainable weight, flat; this shard keeps `[from, to)`. */
  constructor(initial: Float32Array, from: number, to: number, opts: ShardOptions) {
    if (!(initial instanceof Float32Array) || !(from >= 0 && to <= initial.length && from < to)) {
      throw new RangeError(`parameter shard ${opts.shard}: slice [${from}, ${to}) of ${initial?.length} weights`)
    }
    const n = to - from
    this.s = { weights: initial.slice(from, to), m: new Float32Array(n), v: new Float32Array(n), version: 0, updates: 0 }
    this.opts = opts
    this.window = Math.max(1, opts.window)
    this.pending = []
    this.saved = []
    this.savedVersion = -1
    this.dropped = 0
    this.epoch = 0
  }

  describe(): { peer: string; backend: string } { return { peer: colony.peerId, backend: 'js' } }

  /** The slice (in the run's wire format), unless the caller already has this version (then only the version). */
  pull(have: number): { version: number; weights: Float32Array | Uint16Array | null } {
    if (have === this.s.version) return { version: this.s.version, weights: null }
    return { version: this.s.version, weights: this.opts.wire === 'bfloat16' ? this.toBfloat16(this.s.weights) : this.s.weights }
  }

  /**
   * float32 to bfloat16: the upper 16 bits, rounded to nearest even. (The worker has the inverse: each
   * class ships to its peer on its own.)
   */
  private toBfloat16(f: Float32Array): Uint16Array {
    const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length)
    for (let i = 0; i < u.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16
    return out
  }

  /** A worker's gradient for this slice (float32, or bfloat16 under that wire). Returns the version after it (an update may have been applied). */
  push(sent: Float32Array | Uint16Array): { version: number } {
    let gradient = sent
    if (sent instanceof Uint16Array && this.opts.wire === 'bfloat16') {
      gradient = new Float32Array(sent.length)
      const u = new Uint32Array(gradient.buffer)
      for (let i = 0; i < u.length; i++) u[i] = sent[i] << 16
    }
    if (!(gradient instanceof Float32Array) || gradient.length !== this.s.weights.length) {
      throw new RangeError(`parameter shard ${this.opts.shard}: a gradient of ${gradient?.length} values, for ${this.s.weights.length} weights`)
    }
    for (let i = 0; i < gradient.length; i++) {
      if (!Number.isFinite(gradient[i])) throw new RangeError(`parameter shard ${this.opts.shard}: the gradient has a non-finite value at ${i}`)
    }
    this.pending.push(gradient)
    if (this.pending.length >= this.window) this.apply()
    return { version: this.s.version }
  }

  /** The epoch the driver hands batches from: the learning rate decays by epoch. */
  setEpoch(epoch: number): void { this.epoch = epoch }

  /** How many pushes make one update: the live workers, so that each update weighs every one of them. */
  setWindow(window: number): number {
    this.window = Math.max(1, window)
    if (this.pending.length >= this.window) this.apply()
    return this.s.version
  }

  /** The slice and its version, and the pushes it dropped as outliers, for the driver at the end. */
  weights(): { version: number; weights: Float32Array; dropped: number } { return { version: this.s.version, weights: this.s.weights, dropped: this.dropped } }

  /** Before the driver ends it: its checkpoints go too (they are the job's, and would stay until it ends). */
  release(): void {
    colony.grid.free(this.saved)
    this.saved = []
  }

  checkpoint(): { saved: ObjectRef<ShardState>[]; window: number; epoch: number } { return { saved: this.saved, window: this.window, epoch: this.epoch } }

  /** After its peer died: the newest state that can still be read, else (with a line in the job's log) the starting weights. */
  async restore(c: { saved: ObjectRef<ShardState>[]; window: number; epoch: number }): Promise<void> {
    this.window = c.window
    this.epoch = c.epoch ?? 0
    for (const ref of c.saved) {
      let s: ShardState
      try { s = await colony.grid.get(ref) } catch (e) { console.warn(`parameter shard ${this.opts.shard}: a checkpoint could not be read (${(e as Error)?.message ?? e}); trying an older one`); continue }
      if (s.weights.length !== this.s.weights.length) throw new RangeError(`parameter shard ${this.opts.shard}: its checkpoint has ${s.weights.length} weights, not ${this.s.weights.length}`)
      this.s = s
      this.saved = c.saved.slice(c.saved.indexOf(ref))
      this.savedVersion = s.version
      return
    }
    if (c.saved.length) console.warn(`parameter shard ${this.opts.shard}: no checkpoint could be read; starting again from the starting weights`)
  }

  private apply(): void {
    const g = this.combine(this.pending.splice(0))
    const s = this.s, o = this.opts.optimizer, lr = o.lr * Math.pow(o.decay ?? 1, this.epoch)
    s.updates++
    if (o.name === 'adam') {
      const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.epsilon ?? 1e-7
      const c1 = 1 - Math.pow(b1, s.updates), c2 = 1 - Math.pow(b2, s.updates)
      for (let i = 0; i < g.length; i++) {
        s.m[i] = b1 * s.m[i] + (1 - b1) * g[i]
        s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i]
        s.weights[i] -= (lr * (s.m[i] / c1)) / (Math.sqrt(s.v[i] / c2) + eps)
      }
    } else if (o.name === 'momentum') {
      const mu = o.momentum ?? 0.9
      for (let i = 0; i < g.length; i++) { s.m[i] = mu * s.m[i] + g[i]; s.weights[i] -= lr * s.m[i] }
    } else {
      for (let i = 0; i < g.length; i++) s.weights[i] -= lr * g[i]
    }
    s.version++
    if (s.version - this.savedVersion >= this.opts.checkpointEvery) {
      const state = colony.grid.put({ weights: s.weights.slice(), m: s.m.slice(), v: s.v.slice(), version: s.version, updates: s.updates }, { replicate: 2 })
      this.saved = [state, ...this.saved]
      this.savedVersion = s.version
      if (this.saved.length > 2) colony.grid.free(this.saved.splice(2))
    }
  }

  /**
   * The window's gradients as one: clipped to `clipNorm`, then their mean, coordinate-wise median, or
   * trimmed mean (Yin et al., 2018), which also drops whole a push that is an outlier in nearly every coordinate.
   */
  private combine(grads: Float32Array[]): Float32Array {
    const n = grads[0].length, k = grads.length
    if (this.opts.clipNorm) {
      for (const g of grads) {
        let sq = 0
        for (let i = 0; i < n; i++) sq += g[i] * g[i]
        const norm = Math.sqrt(sq)
        if (norm > this.opts.clipNorm) { const f = this.opts.clipNorm / norm; for (let i = 0; i < n; i++) g[i] *= f }
      }
    }
    const out = new Float32Array(n)
    const how = k < 3 ? 'mean' : this.opts.aggregate
    if (how === 'mean') {
      for (const g of grads) for (let i = 0; i < n; i++) out[i] += g[i] / k
      return out
    }
    if (how === 'median') {
      const col = new Float64Array(k)
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < k; j++) col[j] = grads[j][i]
        col.sort()
        out[i] = k % 2 ? col[(k - 1) / 2] : (col[k / 2 - 1] + col[k / 2]) / 2
      }
      return out
    }
    // Per coordinate: the mean without the lowest and highest quarter (at least one each side),
    // counting how often each push is among those cut.
    const trim = Math.max(1, Math.floor(k / 4))
    const order = new Int32Array(k), cut = new Float64Array(k)
    let varied = 0
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        let at = j
        while (at > 0 && grads[order[at - 1]][i] > grads[j][i]) { order[at] = order[at - 1]; at-- }
        order[at] = j
      }
      let sum = 0
      for (let j = trim; j < k - trim; j++) sum += grads[order[j]][i]
      out[i] = sum / (k - 2 * trim)
      if (grads[order[0]][i] === grads[order[k - 1]][i]) continue
      varied++
      for (let j = 0; j < trim; j++) { cut[order[j]]++; cut[order[k - 1 - j]]++ }
    }
    // An honest push is cut in about 2·trim/k of the coordinates where the pushes differ; one cut in
    // nearly all of them (a poisoned or broken gradient, always at an extreme) is dropped whole, and the
    // others are averaged, so the honest gradients all count and none is cut for being on its other side.
    const threshold = (1 + (2 * trim) / k) / 2
    const outliers = [...cut.keys()].filter((j) => varied > 0 && cut[j] / varied >= threshold).sort((a, b) => cut[b] - cut[a]).slice(0, trim)
    if (outliers.length === 0) return out
    this.dropped += outliers.length
    const kept = grads.filter((_, j) => !outliers.includes(j))
    out.fill(0)
    for (const g of kept) for (let i = 0; i < n; i++) out[i] += g[i] / kept.length
    return out
  }
}
