/**
 * A job's log lines as the coordinator keeps them: the most recent ones, within a
 * budget of bytes (UTF-8) and of lines; the older ones are dropped and counted.
 * Job code writes these lines, so nothing it does can grow the coordinator's memory
 * past the budget (lines come in already cut to JOB_TEXT_LIMITS.logLineChars).
 *
 * Each line has a number, `seq`, from 1 over the job's whole log: dropped lines keep theirs,
 * so the first line kept is `dropped + 1`. The HTTP API pages the log by it, and its event
 * stream sends it as each line's id, for a client that reconnects to ask for what followed.
 */
import type { LogLine, Page } from '@colony-grid/shared'
import { pageOf, type PageQuery, type SeqOrdered } from './paging.js'

export class JobLog {
  private lines: string[] = []
  private head = 0
  private bytes = 0
  /** Lines dropped to stay within the budget. */
  dropped = 0

  constructor(private readonly maxBytes: number, private readonly maxLines: number) {}

  /** Keeps a line; returns its number. */
  add(line: string): number {
    this.lines.push(line)
    this.bytes += Buffer.byteLength(line)
    const seq = this.dropped + this.lines.length - this.head
    while (this.head < this.lines.length && (this.bytes > this.maxBytes || this.lines.length - this.head > this.maxLines)) {
      this.bytes -= Buffer.byteLength(this.lines[this.head])
      this.lines[this.head++] = ''
      this.dropped++
    }
    if (this.head > 1024 && this.head * 2 > this.lines.length) { this.lines = this.lines.slice(this.head); this.head = 0 }
    return seq
  }

  /** Lines kept. */
  get size(): number { return this.lines.length - this.head }

  /** The lines kept, in order, as a list numbered by `seq`. */
  private numbered(): SeqOrdered { return { length: this.size, seqAt: (i) => this.dropped + 1 + i } }

  /** A page of the lines kept: oldest first (or newest first), after (before) the cursor's line. */
  page(q: PageQuery): Page<LogLine> {
    const list = this.numbered()
    return pageOf(list, q, list.length, (i) => ({ seq: list.seqAt(i), line: this.lines[this.head + i] }))
  }

  /**
   * The lines kept whose number is past `seq`, oldest first (what a reconnecting event stream missed).
   * A number from before a coordinator restart never gets here (the event stream's ids carry the
   * coordinator's term, and another term's resume from 0: job-events.ts); one past the last line
   * numbered all the same gets every line kept.
   */
  after(seq: number): LogLine[] {
    const out: LogLine[] = []
    const from = seq > this.dropped + this.size ? 0 : Math.max(0, seq - this.dropped)
    for (let i = from; i < this.size; i++) out.push({ seq: this.dropped + 1 + i, line: this.lines[this.head + i] })
    return out
  }
}
