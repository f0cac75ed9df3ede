/** A tab's executors: dedicated Web Workers driven through comlink, ended with terminate(). */
import * as Comlink from 'comlink'
import { ExecutorPoolBase, type ExecutorHandle, type SpawnCallbacks } from '../core/executor-pool.js'
import type { ToHost } from '../core/executor-protocol.js'
import type { ExecutorWorkerApi } from './executor-worker.js'
import type { MlConfig } from './ml.js'

export class BrowserExecutorPool extends ExecutorPoolBase {
  /** The executors alive now: a new ML config reaches them too. */
  private readonly live = new Set<Comlink.Remote<ExecutorWorkerApi>>()

  constructor(executors: number, private ml: MlConfig, log?: (line: string) => void) {
    // One task per worker, and at most `executors` computing at once: what the volunteer offered. A task
    // waiting in get keeps its worker but not its slot, so an extra worker may run the work it waits on
    // (nested tasks on a lone tab would deadlock otherwise). Extras compute only in place of waiting
    // tasks, so their number bounds memory, not cpu: at least 8, enough for a binary tree of depth 3 on
    // a 1-CPU tab (7 waiting at once, and a leaf).
    super({ size: executors, tasksPerExecutor: 1, maxComputing: executors, maxExtra: Math.max(8, executors * 4) },
      log ?? ((l) => console.warn(`[executors] ${l}`)))
  }

  /**
   * Where the ML runtimes' files come from (the coordinator's /ml/): after a failover, the new coordinator.
   * Executors that already loaded a runtime keep it; the others load from here.
   */
  setMlAssetsBase(assetsBase: string): void {
    if (assetsBase === this.ml.assetsBase) return
    this.ml = { ...this.ml, assetsBase }
    for (const api of this.live) void api.configureMl(this.ml).catch(() => { /* it is ending */ })
  }

  protected spawn(cb: SpawnCallbacks): ExecutorHandle {
    const worker = new Worker(new URL('./executor-worker.ts', import.meta.url), { type: 'module', name: 'colony-executor' })
    const api = Comlink.wrap<ExecutorWorkerApi>(worker)
    this.live.add(api)
    void api.connect(Comlink.proxy((msgs: ToHost[]) => cb.onMessages(msgs)), this.ml)
    worker.addEventListener('error', (e) => { this.live.delete(api); cb.onExit(`executor failed: ${e.message || 'error'}`) })
    return {
      send: (msgs) => { void api.deliver(msgs) },
      kill: () => { this.live.delete(api); worker.terminate(); api[Comlink.releaseProxy]() },
    }
  }
}
