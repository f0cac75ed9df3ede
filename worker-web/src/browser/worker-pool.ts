/** A tab's executors: dedicated Web Workers driven through comlink, ended with terminate(). */
import * as Comlink from 'comlink'
import { ExecutorPoolBase, type ExecutorHandle, type SpawnCallbacks } from '../core/executor-pool.js'
import type { ToHost } from '../core/executor-protocol.js'
import type { ExecutorWorkerApi } from './executor-worker.js'
import type { MlConfig } from './ml.js'

export class BrowserExecutorPool extends ExecutorPoolBase {
  constructor(executors: number, private readonly ml: MlConfig, log?: (line: string) => void) {
    // One task per worker, and at most `executors` computing at once: what the volunteer offered. A task
    // waiting in get keeps its worker but not its slot, so an extra worker may run the work it waits on
    // (nested tasks on a lone tab would deadlock otherwise). Extras compute only in place of waiting
    // tasks, so their number bounds memory, not cpu: at least 8, enough for a binary tree of depth 3 on
    // a 1-CPU tab (7 waiting at once, and a leaf).
    super({ size: executors, tasksPerExecutor: 1, maxComputing: executors, maxExtra: Math.max(8, executors * 4) },
      log ?? ((l) => console.warn(`[executors] ${l}`)))
  }

  protected spawn(cb: SpawnCallbacks): ExecutorHandle {
    const worker = new Worker(new URL('./executor-worker.ts', import.meta.url), { type: 'module', name: 'colony-executor' })
    const api = Comlink.wrap<ExecutorWorkerApi>(worker)
    void api.connect(Comlink.proxy((msgs: ToHost[]) => cb.onMessages(msgs)), this.ml)
    worker.addEventListener('error', (e) => cb.onExit(`executor failed: ${e.message || 'error'}`))
    return {
      send: (msgs) => { void api.deliver(msgs) },
      kill: () => { worker.terminate(); api[Comlink.releaseProxy]() },
    }
  }
}
