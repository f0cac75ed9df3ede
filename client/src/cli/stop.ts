/** `colony stop JOB`: cancel a job (DELETE /api/jobs/:id): its tasks stop, its actors end. */
import type { Command } from 'commander'
import type { JobInfo } from '@colony-grid/shared'
import { api, target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { helpAfter, oneShot, subcommand, withTarget } from './program.js'
import { jobTasks } from './words.js'

interface StopOptions { url?: string; token?: string; json?: boolean }

export function registerStop(program: Command): void {
  const cmd = subcommand(program, 'stop', 'cancel a running job: its tasks stop and its actors end')
    .argument('<job>', 'the job\'s id (colony list shows them)')
    .option('--json', 'print the job\'s state afterwards as JSON')
  helpAfter(withTarget(cmd), ['colony stop j_1a2b3c'])
    .addHelpText('after', '\nA job that already ended is left as it is (exit 0, saying so); one that does not exist exits 1.')
    .action(oneShot(cmdStop))
}

async function cmdStop(id: string, opts: StopOptions): Promise<number> {
  const t = target(opts)
  const path = `/api/jobs/${encodeURIComponent(id)}`
  const before = await api(t, path) as JobInfo
  if (before.state !== 'running') {
    if (opts.json) console.log(JSON.stringify(before, null, 2))
    else console.log(`job ${before.id} (${before.name}) had already ended: ${before.state}; nothing to stop`)
    return EXIT.ok
  }
  // The coordinator answers the job as cancelling left it (nothing, if it ended meanwhile).
  const after = await api(t, path, { method: 'DELETE' }) as JobInfo | null
  const job = after?.state ? after : await api(t, path) as JobInfo
  if (opts.json) console.log(JSON.stringify(job, null, 2))
  else console.log(`stopped job ${job.id} (${job.name}): ${job.state}; ${jobTasks(job)}`)
  return EXIT.ok
}
