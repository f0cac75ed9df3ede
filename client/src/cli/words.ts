/** How the CLI says things: jobs' tasks and times, and tables, for people (--json is for programs); numbers and times as everywhere (../words.ts). */
import type { JobInfo, TaskState } from '@colony-grid/shared'
import { counts, duration, plural } from '../words.js'

export { ago, bytes, counts, duration, plural } from '../words.js'

/** All of a job's tasks, and those that ended (finished, failed or cancelled). */
export function taskTotals(tasks: Partial<Record<TaskState, number>>): { total: number; ended: number; finished: number } {
  const n = (s: TaskState) => tasks[s] ?? 0
  const total = Object.values(tasks).reduce<number>((a, b) => a + (b ?? 0), 0)
  return { total, ended: n('finished') + n('failed') + n('cancelled'), finished: n('finished') }
}

/** A job's tasks in words: "7 of 10 finished, 2 running, 1 queued". */
export function jobTasks(job: Pick<JobInfo, 'tasks'>): string {
  const t = job.tasks
  const { total, finished } = taskTotals(t)
  if (total === 0) return 'no tasks yet'
  const rest = counts({ running: t.running ?? 0, queued: (t.ready ?? 0) + (t.waiting ?? 0), failed: t.failed ?? 0, cancelled: t.cancelled ?? 0 }, '')
  return `${finished} of ${plural(total, 'task')} finished${rest ? `, ${rest}` : ''}`
}

/** How long a job ran (it ended) or has been running. */
export function jobTime(job: Pick<JobInfo, 'state' | 'createdAt' | 'finishedAt'>, now = Date.now()): string {
  return job.finishedAt !== undefined ? `took ${duration(job.finishedAt - job.createdAt)}` : `running for ${duration(now - job.createdAt)}`
}

/** Rows under a header, each column as wide as its widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}
