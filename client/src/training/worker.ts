/**
 * A training worker: an actor that builds the model once (tfjs, on its peer's backend) and,
 * for each step it is given, pulls the weights that changed from the parameter server's
 * shards, computes the gradient of one batch, and pushes each shard its slice. Weights and
 * gradients travel as actor-call arguments and results: objects, peer to peer.
 *
 * It ships to peers as source, so it stands alone: no imports, only the `colony` global.
 */
import type { ColonyMl, Grid, ActorHandle } from '@colony-grid/worker-web'
import type { Shard } from '../scoring/types.js'
import type { ColonyParameterShard } from './parameter-shard.js'
import type { ModelPlan, StepPhases } from './types.js'

declare const colony: { ml: ColonyMl; grid: Grid; peerId: string }

type Tf = typeof import('@tensorflow/tfjs')
type LayersModel = import('@tensorflow/tfjs').LayersModel
interface Built { tf: Tf; model: LayersModel; sizes: number[] }

export interface StepOutcome { loss: number; samples: number; ms: number; phases: StepPhases; bytes: number; staleness: number; peer: string }

export class ColonyTrainingWorker {
  declare private readonly plan: ModelPlan
  declare private readonly wanted: string
  declare private built: Promise<Built> | undefined
  declare private flat: Float32Array | undefined
  declare private versions: number[]
  /** The backend chosen for this model: the one asked for, or 'cpu' where 'auto' found the peer's best lacking a gradient. */
  declare private chosen: string | undefined

  constructor(plan: ModelPlan, backend: string) {
    this.plan = plan
    this.wanted = backend
    this.built = undefined
    this.flat = undefined
    this.versions = []
    this.chosen = undefined
  }

  backend(): string { return this.chosen ?? (this.wanted === 'auto' ? colony.ml.backends().tfjs : this.wanted) }

  /** Builds the model now, and says where it runs. */
  async describe(): Promise<{ peer: string; backend: string }> {
    await this.load()
    return { peer: colony.peerId, backend: this.backend() }
  }

  private load(): Promise<Built> {
    this.built ??= (async (): Promise<Built> => {
      let built = await this.build(this.backend())
      const missing = this.missingGradients(built.tf, built.model)
      if (missing.length > 0) {
        const hint = 'name a backend that has it (cpu has every gradient; webgpu has the convolutions\'), or train the convolution as a frozen patch layer (see the README)'
        if (this.wanted !== 'auto') throw new TypeError(`the tfjs ${this.wanted} backend has no ${missing.join(', ')} kernel, which this model's gradients need: ${hint}`)
        built.model.dispose()
        this.chosen = 'cpu'
        built = await this.build('cpu')
      }
      if (built.model.trainableWeights.length === 0) throw new TypeError('the model has no trainable weights')
      return built
    })()
    this.built.catch(() => { this.built = undefined })
    return this.built
  }

  private async build(backend: string): Promise<Built> {
    const tf = await colony.ml.tf({ backend })
    const w = this.plan.weights
    let model: LayersModel
    try {
      model = await tf.loadLayersModel(tf.io.fromMemory(w
        ? { modelTopology: this.plan.topology as never, weightSpecs: w.specs as never, weightData: w.data.buffer.slice(w.data.byteOffset, w.data.byteOffset + w.data.byteLength) as ArrayBuffer }
        : { modelTopology: this.plan.topology as never }))
    } catch (e) {
      throw new TypeError(`the model does not build: ${(e as Error)?.message ?? e}`)
    }
    return { tf, model, sizes: model.trainableWeights.map((v) => v.read().shape.reduce((a, b) => a * b, 1)) }
  }

  /** The data's rows and targets fit the model's input and output, or the step fails saying how they differ. */
  private checkShapes(model: LayersModel, batch: { x: Shard; y: Shard }): void {
    const takes = model.inputs[0].shape.slice(1), rows = batch.x.shape.slice(1)
    if (takes.length !== rows.length || takes.some((d, i) => d !== null && d !== rows[i])) {
      throw new RangeError(`the model takes rows of shape [${takes.map((d) => d ?? 'any').join(', ')}]; the data's rows are [${rows.join(', ')}]: reshape the data, or fix the model's input shape`)
    }
    const classes = model.outputs[0].shape[1] as number
    if (this.plan.loss === 'sparseCategoricalCrossentropy') {
      for (const label of batch.y.data) {
        const c = Number(label)
        if (!(Number.isInteger(c) && c >= 0 && c < classes)) throw new RangeError(`label ${c} is not one of the model's ${classes} classes (0 to ${classes - 1})`)
      }
    } else if (batch.y.shape[1] !== classes) {
      throw new RangeError(`the targets have ${batch.y.shape[1]} columns; the model outputs ${classes}`)
    }
  }

  /** The gradient kernels the model's trainable layers need that this backend lacks (tfjs wasm has no convolution filter gradients). */
  private missingGradients(tf: Tf, model: LayersModel): string[] {
    const kernels: Record<string, string[]> = {
      Conv1D: ['Conv2DBackpropFilter'], Conv2D: ['Conv2DBackpropFilter'], Conv3D: ['Conv3DBackpropFilterV2'],
      DepthwiseConv2D: ['DepthwiseConv2dNativeBackpropFilter'], SeparableConv2D: ['DepthwiseConv2dNativeBackpropFilter', 'Conv2DBackpropFilter'],
    }
    const needed = model.layers.filter((l) => l.trainable && l.trainableWeights.length > 0).flatMap((l) => kernels[l.getClassName()] ?? [])
    return [...new Set(needed)].filter((k) => !tf.getKernel(k, tf.getBackend()))
  }

  /** Rows of a shard as the model's input: float32, scaled by the plan's inputScale. */
  private input(tf: Tf, data: Shard['data'], shape: number[]): import('@tensorflow/tfjs').Tensor {
    const scale = this.plan.inputScale
    const values = new Float32Array(data.length)
    for (let i = 0; i < data.length; i++) values[i] = Number(data[i]) * scale
    return tf.tensor(values, shape)
  }

  /** The trainable weights' names and shapes, in order. */
  async layout(): Promise<{ name: string; shape: number[] }[]> {
    const { model } = await this.load()
    return model.trainableWeights.map((v) => ({ name: v.name, shape: v.read().shape.slice() }))
  }

  /** The trainable weights as built (initializers, or the weights given), flat. */
  async initial(): Promise<Float32Array> {
    const { model } = await this.load()
    const parts = await Promise.all(model.trainableWeights.map((v) => v.read().data()))
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
    let o = 0
    for (const p of parts) { out.set(p as Float32Array, o); o += p.length }
    return out
  }

  /** One step: pull what changed, compute the batch's gradient, push each shard its slice. */
  async step(batch: { x: Shard; y: Shard }, ps: ActorHandle<ColonyParameterShard>[], bounds: number[]): Promise<StepOutcome> {
    const started = performance.now()
    const { tf, model, sizes } = await this.load()
    const total = bounds[bounds.length - 1]
    if (sizes.reduce((a, b) => a + b, 0) !== total) throw new RangeError(`the model has ${sizes.reduce((a, b) => a + b, 0)} trainable weights; the parameter server holds ${total}`)
    this.flat ??= new Float32Array(total)
    let bytes = 0
    // A shard whose peer dies comes back from its checkpoint (maxRestarts): its calls are run again there.
    const pulls = ps.map((p, i) => p.pull.options({ maxRetries: 3 }).remote(this.versions[i] ?? -1))
    // Each call's result (a slice of weights) stays in its shard peer's store until freed: a run of
    // thousands of steps would fill it.
    const pulled = await Promise.all(pulls.map((r) => colony.grid.get(r))).finally(() => colony.grid.free(pulls))
    pulled.forEach((r, i) => {
      if (r.weights instanceof Uint16Array) {
        // bfloat16: the upper half of each float32.
        const u = new Uint32Array(this.flat!.buffer, bounds[i] * 4, r.weights.length)
        for (let j = 0; j < u.length; j++) u[j] = r.weights[j] << 16
        bytes += r.weights.byteLength
      } else if (r.weights) { this.flat!.set(r.weights, bounds[i]); bytes += r.weights.byteLength }
      this.versions[i] = r.version
    })
    if (bytes > 0) this.write(tf, model, this.flat)
    const pulledAt = performance.now()
    const rows = batch.x.shape[0]
    if (!(rows > 0) || batch.x.data.length % rows !== 0) throw new RangeError(`a batch of shape [${batch.x.shape.join(', ')}] with ${batch.x.data.length} values`)
    this.checkShapes(model, batch)
    const { loss, grads } = tf.tidy(() => {
      const x = this.input(tf, batch.x.data, batch.x.shape)
      const y = this.plan.loss === 'sparseCategoricalCrossentropy'
        ? tf.oneHot(tf.tensor1d(Int32Array.from(batch.y.data as ArrayLike<number>), 'int32'), (model.outputs[0].shape[1] as number))
        : tf.tensor(Float32Array.from(batch.y.data as ArrayLike<number>), batch.y.shape)
      const f = () => {
        const out = model.apply(x, { training: true }) as import('@tensorflow/tfjs').Tensor
        // The model's outputs are probabilities (a softmax layer), as Keras's categorical crossentropy takes them.
        return (this.plan.loss === 'meanSquaredError' ? tf.losses.meanSquaredError(y, out) : tf.metrics.categoricalCrossentropy(y, out)).mean() as import('@tensorflow/tfjs').Scalar
      }
      const r = tf.variableGrads(f, model.trainableWeights.map((v) => v.read() as import('@tensorflow/tfjs').Variable))
      return { loss: r.value, grads: model.trainableWeights.map((v) => r.grads[(v.read() as import('@tensorflow/tfjs').Variable).name]) }
    })
    const gradient = new Float32Array(total)
    let o = 0
    for (let i = 0; i < grads.length; i++) { gradient.set(await grads[i].data() as Float32Array, o); o += sizes[i] }
    const lossValue = (await loss.data())[0]
    tf.dispose([loss, ...grads])
    const computedAt = performance.now()
    // The slices are put here and passed as refs, so that they can be freed once pushed (an argument put
    // by the call itself would stay until the job ends).
    const slices = ps.map((_, i) => colony.grid.put(this.onWire(gradient.subarray(bounds[i], bounds[i + 1]))))
    const pushes = ps.map((p, i) => p.push.options({ maxRetries: 3 }).remote(slices[i]))
    const pushed = await Promise.all(pushes.map((r) => colony.grid.get(r))).finally(() => colony.grid.free([...pushes, ...slices]))
    bytes += this.plan.wire === 'bfloat16' ? gradient.byteLength / 2 : gradient.byteLength
    // Updates applied by others between this step's pull and its push (its own, where its push completed a window, not counted).
    const staleness = pushed.reduce((n, r, i) => Math.max(n, r.version - this.versions[i] - 1), 0)
    const ended = performance.now()
    const phases = { pullMs: pulledAt - started, computeMs: computedAt - pulledAt, pushMs: ended - computedAt }
    return { loss: lossValue, samples: rows, ms: ended - started, phases, bytes, staleness: Math.max(0, staleness), peer: colony.peerId }
  }

  /** A gradient's slice as it travels: a copy, in bfloat16 (rounded to nearest even) under that wire. */
  private onWire(f: Float32Array): Float32Array | Uint16Array {
    if (this.plan.wire !== 'bfloat16') return f.slice()
    const u = new Uint32Array(f.buffer, f.byteOffset, f.length), out = new Uint16Array(f.length)
    for (let i = 0; i < u.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16
    return out
  }

  /** The whole model with these trainable weights, as the files tfjs loads (model.json's content and the weights' bytes). */
  async export(weights: Float32Array): Promise<{ modelJson: { modelTopology: unknown; weightsManifest: { paths: string[]; weights: unknown[] }[] }; weights: Uint8Array }> {
    const { tf, model } = await this.load()
    this.setWeights(tf, model, weights)
    let files: { modelJson: { modelTopology: unknown; weightsManifest: { paths: string[]; weights: unknown[] }[] }; weights: Uint8Array } | undefined
    await model.save(tf.io.withSaveHandler(async (a) => {
      const data = a.weightData as ArrayBuffer
      files = { modelJson: { modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }] }, weights: new Uint8Array(data.slice(0)) }
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    }))
    return files!
  }

  private setWeights(tf: Tf, model: LayersModel, weights: Float32Array): void {
    this.write(tf, model, weights)
    // What the worker pulled is no longer what its model holds: its next step pulls everything.
    this.versions = []
  }

  private write(tf: Tf, model: LayersModel, weights: Float32Array): void {
    tf.tidy(() => {
      let o = 0
      for (const v of model.trainableWeights) {
        const size = v.read().shape.reduce((a, b) => a * b, 1)
        v.write(tf.tensor(weights.subarray(o, o + size), v.read().shape))
        o += size
      }
    })
  }

  /** Accuracy of `weights` (flat, trainable) on labelled rows: the share whose largest output is the label. */
  async evaluate(weights: Float32Array, x: Shard, labels: Shard): Promise<number> {
    const { tf, model } = await this.load()
    this.setWeights(tf, model, weights)
    const rows = x.shape[0]
    let right = 0
    for (let r = 0; r < rows; r += 512) {
      const n = Math.min(512, rows - r), size = x.data.length / rows
      const predicted = tf.tidy(() => (model.predict(this.input(tf, x.data.subarray(r * size, (r + n) * size), [n, ...x.shape.slice(1)])) as import('@tensorflow/tfjs').Tensor).argMax(-1))
      const p = await predicted.data()
      predicted.dispose()
      for (let i = 0; i < n; i++) if (p[i] === Number(labels.data[r + i])) right++
    }
    return right / rows
  }
}
