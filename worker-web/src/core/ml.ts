/**
 * `colony.ml`, the ready ML handles task code gets on every peer: tfjs on the peer's
 * best backend, and onnxruntime sessions cached per model (so an actor that scores many
 * batches loads its model once). Tabs and Node peers differ only in how the runtimes load.
 */
type Tf = typeof import('@tensorflow/tfjs')
type Ort = typeof import('onnxruntime-web')
type Session = import('onnxruntime-web').InferenceSession

/** What a platform provides: the runtimes, and which backends are best here. */
export interface MlPlatform {
  loadTf(): Promise<Tf>
  /** onnxruntime for a backend: 'wasm' and 'webgpu' are onnxruntime-web; 'native' is onnxruntime-node. */
  loadOrt(backend: string): Promise<Ort>
  defaults(): { tfjsBackend: string; ortBackend: string }
  sha256Hex(bytes: Uint8Array): Promise<string>
}

export interface SessionOptions {
  /** 'wasm', 'webgpu' (tabs with WebGPU) or 'native' (Node peers with onnxruntime-node); the peer's best by default. */
  backend?: string
}

export interface ColonyMl {
  tf(opts?: { backend?: string }): Promise<Tf>
  ort(opts?: SessionOptions): Promise<Ort>
  session(model: string | Uint8Array, opts?: SessionOptions): Promise<Session>
  /** The backends this peer uses by default. */
  backends(): { tfjs: string; ort: string }
}

/** The onnxruntime execution provider behind a Colony backend name. */
const PROVIDER: Record<string, string> = { wasm: 'wasm', webgpu: 'webgpu', native: 'cpu' }

export function colonyMl(platform: MlPlatform): ColonyMl {
  let tfLoaded: Promise<Tf> | undefined
  const sessions = new Map<string, Promise<Session>>()
  const ortBackend = (opts: SessionOptions) => opts.backend ?? platform.defaults().ortBackend
  const ml: ColonyMl = {
    async tf(opts = {}) {
      const t = await (tfLoaded ??= platform.loadTf())
      const want = opts.backend ?? platform.defaults().tfjsBackend
      if (t.getBackend() !== want) {
        // tfjs throws for a name it never registered, and returns false for one that failed to start.
        const started = await t.setBackend(want).catch(() => false)
        if (!started) throw new Error(`tfjs backend '${want}' is not available on this peer (it has ${Object.keys(t.engine().registryFactory).join(', ')})`)
        await t.ready()
      }
      return t
    },
    ort: (opts = {}) => platform.loadOrt(ortBackend(opts)),
    async session(model, opts = {}) {
      const backend = ortBackend(opts)
      const provider = PROVIDER[backend]
      if (!provider) throw new TypeError(`unknown onnxruntime backend '${backend}' (use wasm, webgpu or native)`)
      // onnxruntime-node would open a path itself, outside the executor's sandbox.
      if (backend === 'native' && typeof model === 'string') throw new TypeError('the native backend takes the model\'s bytes, not a path or URL')
      const key = `${typeof model === 'string' ? `url:${model}` : `sha256:${await platform.sha256Hex(model)}`}|${backend}`
      let s = sessions.get(key)
      if (!s) {
        const o = await platform.loadOrt(backend)
        // One thread per session, as for wasm: a peer's parallelism comes from its executors.
        const threads = backend === 'native' ? { intraOpNumThreads: 1, interOpNumThreads: 1 } : {}
        s = o.InferenceSession.create(model as never, { executionProviders: [provider], ...threads })
        s.catch(() => sessions.delete(key))
        sessions.set(key, s)
      }
      return s
    },
    backends: () => { const d = platform.defaults(); return { tfjs: d.tfjsBackend, ort: d.ortBackend } },
  }
  return ml
}
