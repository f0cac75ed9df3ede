/**
 * `colony logs JOB [-f]`: a job's log on stdout (here the log is the output). Without -f, the lines the
 * coordinator keeps, page by page; with -f, those and then the live ones until the job ends, reconnecting
 * through drops and coordinator restarts.
 */
import type { Command } from 'commander'
import type { LogLine } from '@colony-grid/shared'
import { target, type Target } from '../cli-target.js'
import { EXIT } from './exit-codes.js'
import { followJob } from './follow.js'
import { exitForJob, failureText } from './job-end.js'
import { readPages } from './pages.js'
import { helpAfter, oneShot, seconds, subcommand, withTarget } from './program.js'
import { duration } from './words.js'

interface LogsOptions { url?: string; token?: string; follow?: boolean; json?: boolean; timeout?: number }

export function registerLogs(program: Command): void {
  const cmd = subcommand(program, 'logs', 'print a job\'s log on stdout; -f follows it until the job ends')
    .argument('<job>', 'the job\'s id (colony list shows them)')
    .option('-f, --follow', 'keep printing new lines until the job ends, then exit 0 if it finished, 1 if not')
    .option('--json', 'one JSON object per line, {"seq": N, "line": "..."} (seq: its number in the job\'s log)')
    .option('--timeout <seconds>', 'with -f: how long to keep trying when the stream drops and no coordinator answers (default 120)', seconds)
  helpAfter(withTarget(cmd), [
    'colony logs j_1a2b3c',
    'colony logs j_1a2b3c -f',
    'colony logs j_1a2b3c --json | jq -r .line',
  ]).addHelpText('after', '\nA job that does not exist (or whose log retention dropped) exits 1, saying so.')
    .action(oneShot(cmdLogs))
}

async function cmdLogs(id: string, opts: LogsOptions): Promise<number> {
  const t = target(opts)
  const print = (l: LogLine) => console.log(opts.json ? JSON.stringify(l) : l.line)
  if (!opts.follow) {
    await readPages<LogLine>(t, `/api/jobs/${encodeURIComponent(id)}/logs`, { pageSize: 1000, onPage: (lines) => lines.forEach(print) })
    return EXIT.ok
  }
  return followLogs(t, id, opts, print)
}

async function followLogs(t: Target, id: string, opts: LogsOptions, print: (l: LogLine) => void): Promise<number> {
  // Ctrl-C only stops watching: the job is not this command's to cancel (colony stop is).
  process.once('SIGINT', () => process.exit(EXIT.interrupted))
  const final = await followJob(t, encodeURIComponent(id), {
    giveUpMs: opts.timeout,
    onLog: (line, seq) => print({ seq, line }),
    onReconnect: (why, inMs) => console.error(`colony: lost job ${id}'s event stream (${why}); reconnecting in ${duration(inMs)}…`),
  })
  console.error(final.state === 'finished' ? `colony: job ${id} finished` : `colony: ${failureText(final)}`)
  return exitForJob(final)
}
