import type { ObjectId } from '@colony/shared'

/** The bytes of the objects this peer holds: the results it made, and what it fetched. */
export class LocalObjectStore {
  private readonly objects = new Map<ObjectId, Uint8Array>()
  bytes = 0

  get(id: ObjectId): Uint8Array | undefined { return this.objects.get(id) }
  has(id: ObjectId): boolean { return this.objects.has(id) }
  set(id: ObjectId, data: Uint8Array): void {
    const old = this.objects.get(id)
    if (old) this.bytes -= old.byteLength
    this.objects.set(id, data)
    this.bytes += data.byteLength
  }
  delete(id: ObjectId): void {
    const old = this.objects.get(id)
    if (old) { this.bytes -= old.byteLength; this.objects.delete(id) }
  }
  ids(): ObjectId[] { return [...this.objects.keys()] }
}
