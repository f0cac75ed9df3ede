/**
 * A process's CPU time and resident memory, read from /proc (Linux), as pidusage does, with no
 * dependency: utime + stime of /proc/<pid>/stat, and VmRSS of /proc/<pid>/status.
 */
import { readFileSync } from 'node:fs'

/** Clock ticks a second of /proc/<pid>/stat's times: 100 on every Linux this runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100

/** CPU seconds the process has used (user and system). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may hold spaces: count the fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Resident memory in MiB. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status: has the process exited?`)
  return Number(m[1]) / 1024
}

/** Measures CPU use from now until `stop()`: percent of one core over the wall time between. */
export function cpuMeter(pid: number): { stop(): { percent: number; seconds: number } } {
  const cpu0 = cpuSeconds(pid), t0 = performance.now()
  return {
    stop() {
      const seconds = (performance.now() - t0) / 1000
      return { percent: ((cpuSeconds(pid) - cpu0) / seconds) * 100, seconds }
    },
  }
}

/** Percent of one core the process used over the next `ms`. */
export async function cpuPercentOver(pid: number, ms: number): Promise<number> {
  const meter = cpuMeter(pid)
  await new Promise((r) => setTimeout(r, ms))
  return meter.stop().percent
}
