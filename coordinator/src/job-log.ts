/**
 * A job's log lines as the coordinator keeps them: the most recent ones, within a
 * budget of bytes (UTF-8) and of lines; the older ones are dropped and counted.
 * Job code writes these lines, so nothing it does can grow the coordinator's memory
 * past the budget (lines come in already cut to JOB_TEXT_LIMITS.logLineChars).
 */
export class JobLog {
  private lines: string[] = []
  private head = 0
  private bytes = 0
  /** Lines dropped to stay within the budget. */
  dropped = 0

  constructor(private readonly maxBytes: number, private readonly maxLines: number) {}

  add(line: string): void {
    this.lines.push(line)
    this.bytes += Buffer.byteLength(line)
    while (this.head < this.lines.length && (this.bytes > this.maxBytes || this.lines.length - this.head > this.maxLines)) {
      this.bytes -= Buffer.byteLength(this.lines[this.head])
      this.lines[this.head++] = ''
      this.dropped++
    }
    if (this.head > 1024 && this.head * 2 > this.lines.length) { this.lines = this.lines.slice(this.head); this.head = 0 }
  }

  /** The lines kept, oldest first (a copy). */
  kept(): string[] { return this.lines.slice(this.head) }
}
