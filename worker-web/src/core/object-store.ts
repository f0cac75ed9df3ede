import { LimitError, type JobId, type ObjectId } from '@colony-grid/shared'

/**
 * The bytes of the objects this peer holds: primaries (results it made, objects it
 * put) and copies (fetched from elsewhere). Past `capBytes`, the least recently used
 * copies are evicted, since another peer holds each; primaries never are.
 * Each entry records the job it belongs to: a task reads only its own job's bytes here.
 */
export class LocalObjectStore {
  /** In least-recently-used order: a read moves an entry to the end. */
  private readonly objects = new Map<ObjectId, { bytes: Uint8Array; primary: boolean; job: JobId }>()
  bytes = 0

  constructor(readonly capBytes = Infinity, private readonly onEvict?: (ids: ObjectId[]) => void) {}

  get(id: ObjectId): Uint8Array | undefined {
    const e = this.objects.get(id)
    if (!e) return undefined
    this.objects.delete(id)
    this.objects.set(id, e)
    return e.bytes
  }
  has(id: ObjectId): boolean { return this.objects.has(id) }
  /** The bytes, only if they belong to `job`. */
  getFor(id: ObjectId, job: JobId): Uint8Array | undefined { return this.objects.get(id)?.job === job ? this.get(id) : undefined }
  jobOf(id: ObjectId): JobId | undefined { return this.objects.get(id)?.job }

  /** Throws LimitError when the object cannot fit even after evicting every copy. */
  set(id: ObjectId, data: Uint8Array, primary: boolean, job: JobId): void {
    this.delete(id)
    const need = data.byteLength
    if (this.bytes + need > this.capBytes) {
      const evicted: ObjectId[] = []
      for (const [eid, e] of this.objects) {
        if (this.bytes + need <= this.capBytes) break
        if (e.primary) continue
        this.objects.delete(eid)
        this.bytes -= e.bytes.byteLength
        evicted.push(eid)
      }
      if (evicted.length) this.onEvict?.(evicted)
      if (this.bytes + need > this.capBytes) {
        throw new LimitError('objectStoreBytes', `object ${id} (${need} bytes) does not fit in this peer's object store: ` +
          `${this.bytes} of its ${this.capBytes} bytes hold objects with no other copy. Free objects you no longer need, or give the peer more (--store-mb).`)
      }
    }
    this.objects.set(id, { bytes: data, primary, job })
    this.bytes += need
  }

  delete(id: ObjectId): void {
    const e = this.objects.get(id)
    if (e) { this.bytes -= e.bytes.byteLength; this.objects.delete(id) }
  }
  ids(): ObjectId[] { return [...this.objects.keys()] }
}
