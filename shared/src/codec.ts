/**
 * Two codecs over msgpackr:
 *  - frames: the control plane batches many messages into one binary frame;
 *  - values: task arguments and results, with ObjectRefs and actor handles kept
 *    as references (never resolved here) and typed arrays kept typed.
 * The coordinator only moves value bytes around; it decodes them only to show a
 * job's result over HTTP.
 */
import { Packr, addExtension } from 'msgpackr'
import { ObjectRef, ActorHandleBase, type ActorHandleData } from './refs.js'
import type { ObjectId } from './ids.js'

const framePackr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' })
const valuePackr = new Packr({ useRecords: false, moreTypes: true, int64AsType: 'number' })

export function encodeFrame(msgs: readonly unknown[]): Uint8Array { return framePackr.pack(msgs) }
/** Decodes a frame; throws on bytes that are not a msgpack array. */
export function decodeFrame(bytes: Uint8Array): unknown[] {
  const out = framePackr.unpack(bytes)
  if (!Array.isArray(out)) throw new TypeError('frame is not an array of messages')
  return out
}

type ActorHandleFactory = (data: ActorHandleData) => unknown
let actorHandleFactory: ActorHandleFactory = (data) => new ActorHandleBase(data)
/** The client installs this so decoded handles can call methods in the current grid. */
export function setActorHandleFactory(f: ActorHandleFactory): void { actorHandleFactory = f }

/** ObjectRefs met while encoding; a task's arguments list them as dependencies. */
let collecting: ObjectId[] | null = null

addExtension({
  Class: ObjectRef, type: 0x43,
  write(ref: ObjectRef) { collecting?.push(ref.id); return ref.id },
  read(id: string) { return new ObjectRef(id) },
})
addExtension({
  Class: ActorHandleBase, type: 0x44,
  write(h: ActorHandleBase) { return h.__actor },
  read(data: ActorHandleData) { return actorHandleFactory(data) },
})

export function encodeValue(value: unknown): Uint8Array { return valuePackr.pack(value) }
export function decodeValue<T = unknown>(bytes: Uint8Array): T { return valuePackr.unpack(bytes) as T }

/** Encodes a value and returns every ObjectRef inside it, at any depth. */
export function encodeValueWithRefs(value: unknown): { bytes: Uint8Array; refs: ObjectId[] } {
  const refs: ObjectId[] = []
  collecting = refs
  try { return { bytes: valuePackr.pack(value), refs } } finally { collecting = null }
}
