/**
 * Which actors each actor created (from inside its calls or its creation): they share its fate,
 * as in Ray, where an actor dies with its owner. The tree is rebuilt at a restart from the stored
 * creation specs (`TaskSpec.owner`), so it is never written anywhere of its own.
 */
export class ActorOwners {
  /** Owner → the actors it created. Bound: one entry per actor on record (dropJob forgets a job's). */
  private readonly children = new Map<string, Set<string>>()

  add(child: string, owner: string | undefined): void {
    if (owner === undefined) return
    let mine = this.children.get(owner)
    if (!mine) this.children.set(owner, mine = new Set())
    mine.add(child)
  }

  /** The actors `owner` created, forgotten: it has ended, or it is being restarted (its new instance makes its own). */
  take(owner: string): string[] {
    const mine = this.children.get(owner)
    this.children.delete(owner)
    return mine ? [...mine] : []
  }

  /** Retention dropped these actors' records. */
  forget(ids: readonly string[]): void {
    for (const id of ids) this.children.delete(id)
  }
}
