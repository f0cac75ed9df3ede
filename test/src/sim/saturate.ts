/**
 * Saturates the machine's cores: busy-loop child processes at normal priority, as a tab's
 * neighbours or a build on a volunteer's laptop would, so every other process (the coordinator
 * and the simulated peers too) gets a fraction of a core and its timers fire late.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { availableParallelism } from 'node:os'

export interface Saturation { stop(): Promise<void> }

/** `processes` busy loops (default two per core), until stop(). */
export function saturateCpu(processes = availableParallelism() * 2): Saturation {
  const loops: ChildProcess[] = Array.from({ length: processes }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }))
  return {
    async stop() {
      await Promise.all(loops.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve()
        c.once('exit', () => resolve())
        c.kill('SIGKILL')
      })))
    },
  }
}
