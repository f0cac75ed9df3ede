/**
 * How Colony says numbers and times to people, in one place: the CLI, the dashboard and the IDE
 * write durations, ages, counts and sizes alike. Pure (no DOM, no Node): each of them imports it.
 */

const counter = new Intl.NumberFormat('en')

/** 100000 → "100,000". */
export const count = (n: number): string => counter.format(n)

/** "1 worker", "3 workers", "1,200 tasks" (`many`: a plural that is not `one` + s). */
export const plural = (n: number, one: string, many = `${one}s`): string => `${count(n)} ${n === 1 ? one : many}`

/** Counts by name, in words, leaving out zeros: "3 running, 1 failed" (or `none`). */
export function counts(byName: Record<string, number>, none = 'none'): string {
  const parts = Object.entries(byName).filter(([, n]) => n > 0).map(([k, n]) => `${count(n)} ${k}`)
  return parts.length ? parts.join(', ') : none
}

/** A span of ms, in the largest unit that keeps it short: 850 ms, 12.3 s, 4 min 5 s, 2 h 10 min, 3 d 4 h. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`
  const s = Math.round(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`
  const m = Math.round(s / 60)
  if (m < 24 * 60) return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`
  const h = Math.round(m / 60)
  return `${Math.floor(h / 24)} d${h % 24 ? ` ${h % 24} h` : ''}`
}

/** How long ago `at` was, from `now`: "4 min 5 s ago". */
export const ago = (at: number, now = Date.now()): string => `${duration(Math.max(0, now - at))} ago`

/** A size in bytes, 1024 to a step: 512 B, 1.5 KB, 3.2 MB, 1.0 GB. */
export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`
}
