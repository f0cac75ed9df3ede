import type { ActorId, ObjectId } from './ids.js'

/** A future: the name of an immutable value that a task will produce (or `put` produced). */
export class ObjectRef<T = unknown> {
  /** Phantom field so ObjectRef<number> and ObjectRef<string> are distinct types. */
  declare readonly __type?: T
  constructor(readonly id: ObjectId) {}
  toString(): string { return `ObjectRef(${this.id})` }
  toJSON(): { objectRef: ObjectId } { return { objectRef: this.id } }
}

/** What travels when an actor handle is passed to a task; the client rebuilds a live handle from it. */
export interface ActorHandleData {
  actorId: ActorId
  className: string
  methods: string[]
}

/** Base of live actor handles, so the value codec can recognise one by class. */
export class ActorHandleBase {
  constructor(readonly __actor: ActorHandleData) {}
  toJSON(): { actor: ActorId } { return { actor: this.__actor.actorId } }
}
