/**
 * The progress of a long job on a terminal: a cli-progress bar on stderr, tasks finished out of tasks
 * submitted, with the job's log lines written above it. It appears only once the job has run for
 * `delayMs` (a quick job prints no bar at all), and is cleared before the result is printed.
 */
import cliProgress from 'cli-progress'
import type { JobInfo } from '@colony-grid/shared'
import { request, type Target } from '../cli-target.js'
import { taskTotals } from './words.js'

export interface ProgressOptions {
  /** Where the bar goes (stderr); it is shown only if this is a terminal. */
  stream?: NodeJS.WriteStream
  /** The job's counts are read this often. Default 500 ms. */
  pollMs?: number
  /** The bar appears after this long. Default 1 s. */
  delayMs?: number
}

export class JobProgress {
  private bars: cliProgress.MultiBar | undefined
  private bar: cliProgress.SingleBar | undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private stopped = false
  private readonly stream: NodeJS.WriteStream

  /**
   * Follows job `id`'s task counts in a bar if `enabled` and the stream is a terminal; otherwise it
   * only writes log lines (the same calls work either way).
   */
  constructor(private readonly t: Target, private readonly id: string, enabled: boolean, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr
    if (!enabled || !this.stream.isTTY) return
    const pollMs = opts.pollMs ?? 500
    // The next poll is `pollMs` after this one answered (or timed out): a slow coordinator never has two at once.
    const next = (ms: number) => { if (!this.stopped) this.timer = setTimeout(() => void this.poll().finally(() => next(pollMs)), ms) }
    next(opts.delayMs ?? 1000)
  }

  /** A log line: above the bar while it shows. */
  log(line: string): void {
    if (!this.bars) { this.stream.write(`${line}\n`); return }
    this.bars.log(`${line}\n`)
    this.bars.update()
  }

  /** The counts of a state the job reported (the follow's state events), without waiting for the next poll. */
  update(job: Pick<JobInfo, 'tasks'>): void {
    if (this.stopped) return
    const { total, ended } = taskTotals(job.tasks)
    if (!this.bars) {
      this.bars = new cliProgress.MultiBar({
        stream: this.stream,
        format: 'tasks [{bar}] {value}/{total} finished | {duration_formatted}',
        // forceRedraw: a log line written above the bar clears its line, and an unchanged bar would not be drawn again.
        hideCursor: true, clearOnComplete: true, stopOnComplete: false, barsize: 30, fps: 5, forceRedraw: true,
      }, cliProgress.Presets.shades_classic)
      this.bar = this.bars.create(total, ended)
    } else {
      this.bar!.setTotal(total)
      this.bar!.update(ended)
    }
  }

  /** Clears the bar (before the result prints) and stops polling. */
  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.bars?.stop()
    this.bars = undefined
  }

  private async poll(): Promise<void> {
    // The bar is a nicety: a coordinator that does not answer now is the follow's business, not the bar's.
    try {
      const res = await request(this.t, `/api/jobs/${this.id}`, { timeoutMs: 5000 })
      if (res.ok) this.update(await res.json() as JobInfo)
    } catch { /* next poll */ }
  }
}
