/**
 * The actor each scoring peer runs: it loads the model once (an onnxruntime session or a
 * tfjs LayersModel, through `colony.ml`) and keeps it warm for every shard it is sent.
 *
 * It ships to peers as source, so it stands alone: no imports, only the `colony` global
 * (test/src/scoring.test.ts compiles its source on its own, as a peer does).
 */
import type { ColonyMl } from '@colony-grid/worker-web'
import type { ModelPayload, Shard, ShardScore, ScoringActorOptions } from './types.js'

declare const colony: { ml: ColonyMl; peerId: string }

type RunBatch = (x: Float32Array, shape: number[]) => Promise<{ data: Float32Array; width: number }>

export class ColonyScoringActor {
  // `declare`d, and set in the constructor: class field syntax would compile, for older targets,
  // to calls of a bundler helper that the peer (compiling this class's source alone) lacks.
  declare private loaded: Promise<RunBatch> | undefined
  declare private readonly model: ModelPayload
  declare private readonly options: ScoringActorOptions

  constructor(model: ModelPayload, options: ScoringActorOptions) {
    this.model = model
    this.options = options
    this.loaded = undefined
  }

  backend(): string {
    const b = this.options.backend ?? 'auto'
    if (b !== 'auto') return b
    const mine = colony.ml.backends()
    return this.model.format === 'onnx' ? mine.ort : mine.tfjs
  }

  /** Loads the model now, and says where it runs. */
  async describe(): Promise<{ peer: string; backend: string }> {
    await this.load()
    return { peer: colony.peerId, backend: this.backend() }
  }

  private load(): Promise<RunBatch> {
    this.loaded ??= (async (): Promise<RunBatch> => {
      const m = this.model, backend = this.backend()
      if (m.format === 'onnx') {
        const ort = await colony.ml.ort({ backend })
        const session = await colony.ml.session(m.bytes, { backend })
        const input = this.options.inputName ?? session.inputNames[0]
        const output = this.options.outputName ?? session.outputNames[0]
        return async (x, shape) => {
          const out = await session.run({ [input]: new ort.Tensor('float32', x, shape) })
          const y = out[output]
          if (!y) throw new Error(`the model has no output '${output}' (it has ${session.outputNames.join(', ')})`)
          return { data: Float32Array.from(y.data as Float32Array), width: y.dims.length > 1 ? Number(y.dims[y.dims.length - 1]) : 1 }
        }
      }
      const tf = await colony.ml.tf({ backend })
      const w = m.weights
      const model = await tf.loadLayersModel(tf.io.fromMemory({
        modelTopology: m.topology as never, weightSpecs: m.weightSpecs as never,
        weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength) as ArrayBuffer,
      }))
      return async (x, shape) => {
        const t = tf.tensor(x, shape)
        const y = model.predict(t) as import('@tensorflow/tfjs').Tensor
        const data = Float32Array.from(await y.data() as Float32Array)
        const width = y.shape.length > 1 ? y.shape[y.shape.length - 1]! : 1
        tf.dispose([t, y])
        return { data, width }
      }
    })()
    this.loaded.catch(() => { this.loaded = undefined })
    return this.loaded
  }

  /**
   * Scores one shard, `batchSize` rows per model call; returns its outputs and how long it took here.
   * A shard may also be another actor's ShardScore (serving's pipelines pass one stage's output to the next as a ref).
   */
  async score(input: Shard | ShardScore, index: number): Promise<ShardScore> {
    const started = performance.now()
    const shard: Shard = 'shape' in input ? input : { data: input.data, shape: [input.rows, input.width] }
    const run = await this.load()
    const rows = shard.shape[0]
    const rowSize = shard.shape.slice(1).reduce((a, b) => a * b, 1)
    if (!(rows >= 0) || shard.data.length !== rows * rowSize) {
      throw new RangeError(`shard ${index}: shape [${shard.shape.join(', ')}] does not match its ${shard.data.length} values`)
    }
    const scale = this.options.inputScale ?? 1
    const src = shard.data
    const x = src instanceof Float32Array && scale === 1 ? src : Float32Array.from(src as ArrayLike<number>, (v) => v * scale)
    const batch = Math.max(1, this.options.batchSize ?? rows)
    const parts: Float32Array[] = []
    let width = 0
    for (let r = 0; r < rows; r += batch) {
      const n = Math.min(batch, rows - r)
      const out = await run(x.subarray(r * rowSize, (r + n) * rowSize), [n, ...shard.shape.slice(1)])
      width = out.width
      parts.push(out.data)
    }
    const data = parts.length === 1 ? parts[0] : new Float32Array(rows * width)
    if (parts.length > 1) { let o = 0; for (const p of parts) { data.set(p, o); o += p.length } }
    return { index, rows, width, data, ms: performance.now() - started, peer: colony.peerId }
  }
}
