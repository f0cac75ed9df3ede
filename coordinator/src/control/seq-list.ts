/**
 * Ids in the order they were added, each with its sequence number (increasing, never reused):
 * what the HTTP API pages a job's objects and actors, and the jobs, from (paging.ts). Adding is
 * O(1); dropping is one pass (records go a chunk at a time, or a job's all at once).
 */
import { firstAfter, type SeqOrdered } from '../paging.js'

export class SeqList implements SeqOrdered {
  private ids: string[] = []
  private seqs: number[] = []

  get length(): number { return this.ids.length }
  idAt(i: number): string { return this.ids[i] }
  seqAt(i: number): number { return this.seqs[i] }

  push(id: string, seq: number): void {
    this.ids.push(id)
    this.seqs.push(seq)
  }

  /** Drops one id, found by its sequence number. */
  remove(seq: number): void {
    const i = firstAfter(this, seq) - 1
    if (i < 0 || this.seqs[i] !== seq) return
    this.ids.splice(i, 1)
    this.seqs.splice(i, 1)
  }

  /** Drops these ids (one pass). */
  removeAll(gone: ReadonlySet<string>): void {
    let w = 0
    for (let r = 0; r < this.ids.length; r++) {
      if (gone.has(this.ids[r])) continue
      this.ids[w] = this.ids[r]
      this.seqs[w++] = this.seqs[r]
    }
    this.ids.length = w
    this.seqs.length = w
  }
}
