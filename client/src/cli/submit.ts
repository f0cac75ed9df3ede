/**
 * `colony submit FILE [ARGS...]`: bundle a job module, submit it, and follow it: its log on stderr,
 * its result on stdout (so `colony submit job.ts > result.json` keeps only the result), a progress bar
 * on a terminal, and an exit code that says how it ended. Ctrl-C cancels the job, then exits 130.
 */
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import type { JobInfo } from '@colony-grid/shared'
import { bundleJob } from '../bundle.js'
import { api, fail, target, type Target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { followJob } from './follow.js'
import { exitForJob, failureText } from './job-end.js'
import { oneShot, helpAfter, seconds, subcommand, withTarget } from './program.js'
import { JobProgress } from './progress.js'
import { bytes as sizeOf, duration } from './words.js'

interface SubmitOptions { url?: string; token?: string; args?: string; name?: string; wait: boolean; json?: boolean; quiet?: boolean; timeout?: number }

export function registerSubmit(program: Command): void {
  const cmd = subcommand(program, 'submit', 'bundle a job module, run it on the grid and follow it: its log on stderr, its result on stdout')
    .argument('<file>', 'the job module (.ts or .js): its default export main(grid, ...args) runs on the grid')
    .argument('[args...]', 'main\'s arguments after grid, each read as JSON if it parses (6, \'[1,2]\', true), else as a string')
    .option('--args <json>', 'main\'s arguments as one JSON array, e.g. \'[10, "x"]\' (instead of ARGS)')
    .option('--name <name>', 'the job\'s name (default: the file\'s name)')
    .option('--no-wait', 'print the job\'s id and exit at once (follow it with colony logs JOB -f, end it with colony stop JOB)')
    .option('--json', 'print JSON on stdout: with --no-wait the job as submitted, else its final state (result or error)')
    .option('-q, --quiet', 'no "submitted" line and no progress bar')
    .option('--timeout <seconds>', 'how long to keep trying when the job\'s event stream drops and no coordinator answers (default 120)', seconds)
  helpAfter(withTarget(cmd), [
    'colony submit client/examples/hello.ts                 # logs on stderr, {"sumOfSquares": 385, ...} on stdout',
    'colony submit client/examples/tree-sum.ts 6            # main(grid, 6)',
    'colony submit job.ts --args \'[10, "x"]\' > result.json',
    'JOB=$(colony submit job.ts --no-wait); colony logs $JOB -f',
  ]).action(oneShot(cmdSubmit))
}

/** main's arguments: --args (one JSON array) or the words after FILE (each JSON if it parses, else a string). */
function jobArguments(words: string[], json: string | undefined): unknown[] {
  if (json !== undefined) {
    if (words.length > 0) fail('give main\'s arguments either after FILE or as --args JSON, not both')
    let parsed: unknown
    try { parsed = JSON.parse(json) } catch { fail('--args must be a JSON array, e.g. --args "[10]"') }
    if (!Array.isArray(parsed)) fail('--args must be a JSON array, e.g. --args "[10]"')
    return parsed
  }
  return words.map((w) => { try { return JSON.parse(w) as unknown } catch { return w } })
}

async function cmdSubmit(file: string, words: string[], opts: SubmitOptions): Promise<number> {
  if (!existsSync(file)) fail(`no such file: ${file}`)
  const jobArgs = jobArguments(words, opts.args)
  const t = target(opts)
  const { code, bytes } = await bundleJob(file).catch((e: Error) => fail(e.message))
  const name = opts.name ?? file.replace(/^.*\//, '').replace(/\.[cm]?[jt]s$/, '')
  const job = await api(t, '/api/jobs', { method: 'POST', body: JSON.stringify({ bundle: code, name, args: jobArgs }), timeoutMs: 120_000 }) as JobInfo
  if (!opts.wait) {
    console.log(opts.json ? JSON.stringify(job, null, 2) : job.id)
    return EXIT.ok
  }
  // From here on Ctrl-C is the job's to answer: before anything is printed that someone could react to.
  let progress: JobProgress | undefined
  const ctrlC = cancelOnCtrlC(t, job.id, () => progress?.stop())
  if (!opts.quiet) console.error(`submitted ${name} (${sizeOf(bytes)}) as job ${job.id}`)
  progress = new JobProgress(t, job.id, !opts.json && !opts.quiet)
  return follow(t, job.id, opts, progress, ctrlC)
}

async function follow(t: Target, id: string, opts: SubmitOptions, progress: JobProgress, ctrlC: { readonly pressed: boolean }): Promise<number> {
  const final = await followJob(t, id, {
    // The submit just reached a coordinator: one that does not answer the first events request is restarting.
    reached: true,
    giveUpMs: opts.timeout,
    onLog: (line) => progress.log(line),
    onReconnect: (why, inMs) => progress.log(`colony: lost job ${id}'s event stream (${why}); reconnecting in ${duration(inMs)}…`),
  })
  // The job ended because of Ctrl-C: the cancel in flight says so and exits 130 (not 1, as a cancel from elsewhere would).
  if (ctrlC.pressed) await new Promise<never>(() => {})
  progress.stop()
  if (opts.json) console.log(JSON.stringify(final, null, 2))
  else if (final.state === 'finished') console.log(JSON.stringify(final.result, null, 2))
  if (final.state !== 'finished') console.error(`colony: ${failureText(final)}`)
  return exitForJob(final)
}

/**
 * Ctrl-C cancels the job (DELETE /api/jobs/:id), says so, and exits 130; a second Ctrl-C exits at once.
 * Cancelling on the way out is what `ray job submit` does not, and what people expect of a foreground job.
 */
function cancelOnCtrlC(t: Target, id: string, clearBar: () => void): { readonly pressed: boolean } {
  const ctrlC = { pressed: false }
  process.on('SIGINT', () => {
    if (ctrlC.pressed) process.exit(EXIT.interrupted)
    ctrlC.pressed = true
    clearBar()
    console.error(`colony: cancelling job ${id}… (Ctrl-C again: stop waiting for the answer)`)
    api(t, `/api/jobs/${id}`, { method: 'DELETE', timeoutMs: 10_000 })
      .then(() => console.error(`colony: cancelled job ${id}`))
      .catch((e: Error) => console.error(`colony: could not cancel job ${id}: ${e.message}. It may still be running: colony stop ${id}`))
      .finally(() => process.exit(EXIT.interrupted))
  })
  return ctrlC
}
