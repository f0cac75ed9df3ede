/**
 * Ids are strings with a kind prefix so logs and errors are readable at a glance.
 * Task ids are minted by the submitter (no round trip), and a task's return
 * ObjectIds are derived from its TaskId so lineage can rebuild a lost result.
 */
export type PeerId = string
export type JobId = string
export type TaskId = string
export type ObjectId = string
export type ActorId = string

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(buf)
  let s = ''
  for (const b of buf) s += b.toString(16).padStart(2, '0')
  return s
}

/** Mints ids for one submitter: a random prefix plus a counter, cheap enough for the hot path. */
export class IdMinter {
  private readonly prefix = randomHex(6)
  private n = 0
  task(): TaskId { return `t.${this.prefix}.${(this.n++).toString(36)}` }
  put(): ObjectId { return `o.${this.prefix}.${(this.n++).toString(36)}` }
}

export function newPeerId(): PeerId { return `p_${randomHex(6)}` }
export function newJobId(): JobId { return `j_${randomHex(6)}` }
export function newToken(): string { return randomHex(16) }

/** The ObjectId of return value `index` of a task. */
export function returnId(taskId: TaskId, index = 0): ObjectId { return `${taskId}.r${index}` }

/** The task that made an object, or undefined for a `put` object. */
export function taskOfObject(id: ObjectId): TaskId | undefined {
  const i = id.lastIndexOf('.r')
  return id.startsWith('t.') && i > 0 ? id.slice(0, i) : undefined
}

/** An actor is named by the task that created it. */
export function actorIdOf(creationTask: TaskId): ActorId { return creationTask }

/** A stable, fast 53-bit string hash (cyrb53), used to name inline function sources. */
export function hashString(str: string, seed = 0): string {
  let h1 = 0xdeadbeef ^ seed, h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, '0')
}
