/** A tab's executors: dedicated Web Workers driven through comlink, ended with terminate(). */
import * as Comlink from 'comlink'
import { ExecutorPoolBase, type ExecutorHandle, type SpawnCallbacks } from '../core/executor-pool.js'
import type { ToHost } from '../core/executor-protocol.js'
import type { ExecutorWorkerApi } from './executor-worker.js'
import type { MlConfig } from './ml.js'

export class BrowserExecutorPool extends ExecutorPoolBase {
  constructor(executors: number, private readonly ml: MlConfig, log?: (line: string) => void) {
    // One task per worker; tasks waiting in get may hold theirs, so up to 4x extra workers start.
    super({ size: executors, tasksPerExecutor: 1, maxExtra: executors * 4 }, log ?? ((l) => console.warn(`[executors] ${l}`)))
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
