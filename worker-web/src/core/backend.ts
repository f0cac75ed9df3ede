import type { FnDef, ObjectId, ObjectInfo, TaskId, TaskSpec } from '@colony-grid/shared'

/**
 * What the Grid API needs underneath. A driver's backend talks to the coordinator
 * directly (Peer); a task's backend forwards to the peer that runs it (executors).
 */
export interface GridBackend {
  defineFn(def: FnDef): void
  submit(spec: TaskSpec): void
  /** `replicate`: copies to keep on distinct peers (see Grid.put). */
  put(id: ObjectId, bytes: Uint8Array, replicate?: number): void
  /** Resolves once the object is ready or failed; `info.error` says which. */
  ready(id: ObjectId): Promise<ObjectInfo>
  /** The value bytes of a ready object, from wherever they are. */
  fetch(info: ObjectInfo): Promise<Uint8Array>
  cancel(ids: TaskId[], force: boolean): void
  /** The objects are no longer needed by this side. */
  free(ids: ObjectId[]): void
  /** Inside a task: the task waits in get/wait, so its executor slot can run other work. */
  blocked?(isBlocked: boolean): void
  /** Inside a bundle job: the export name of a function of the bundle, so it ships by name. */
  bundleExport?(fn: unknown): { bundle: string; export: string } | undefined
  close?(): Promise<void>
}
