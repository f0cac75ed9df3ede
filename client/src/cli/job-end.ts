/** How a followed job's end is told (stderr) and what the command exits with. */
import type { JobInfo } from '@colony-grid/shared'
import { EXIT, type ExitCode } from './exit-codes.js'

/** 0 for a finished job; 1 for one that failed or was cancelled. */
export const exitForJob = (job: Pick<JobInfo, 'state'>): ExitCode => (job.state === 'finished' ? EXIT.ok : EXIT.failed)

/** Why a job did not finish, for stderr: the error with its task, peer and remote stack. */
export function failureText(job: JobInfo, byYou = false): string {
  const err = job.error
  if (job.state === 'cancelled') return `job ${job.id} was cancelled${byYou ? ' (by you)' : ''}${err?.message ? `: ${err.message}` : ''}`
  const where = [err?.taskName && `task ${err.taskName}${err.taskId ? ` (${err.taskId})` : ''}`, err?.peerId && `peer ${err.peerId}`].filter(Boolean).join(' on ')
  return `job ${job.id} ${job.state}: ${err?.message ?? 'no error was given'}` +
    `${where ? `\n  in ${where}` : ''}${err?.remoteStack ? `\nremote stack:\n${err.remoteStack}` : ''}`
}
