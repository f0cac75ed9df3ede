#!/usr/bin/env node
/**
 * `colony`: start a coordinator, join a worker, run everything locally, submit a job and follow it,
 * read its log, stop it, list jobs, look at the grid, manage tokens and deployments.
 * Each command lives in cli/ (one module each); this is the entry: the program, and how it exits.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { registerServe } from './cli-serve.js'
import { CliError, EXIT, EXIT_CODES_HELP } from './cli/exit-codes.js'
import { registerList } from './cli/list.js'
import { registerLogs } from './cli/logs.js'
import { exitWhenFlushed } from './cli/program.js'
import { registerStart } from './cli/start.js'
import { registerStatus } from './cli/status.js'
import { registerStop } from './cli/stop.js'
import { registerSubmit } from './cli/submit.js'
import { registerToken } from './cli/token.js'
import { registerWorker } from './cli/worker.js'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

const program = new Command('colony')
  .description('Colony: a volunteer compute grid of browser tabs and Node peers')
  .version(version, '-V, --version', 'print the version')
  // Errors become exceptions with their exit code, so that usage errors exit 2 (commander's own is 1).
  .exitOverride()
  .showHelpAfterError('(colony --help lists the commands)')
  .addHelpText('after', `
Every command takes --help. URL and token default to $COLONY_URL (else http://127.0.0.1:8787) and
$COLONY_TOKEN ($COLONY_JOIN_TOKEN for worker), else to ./.colony/tokens.json, which colony start writes.
A grid with standby coordinators: give them all, comma-separated (--url https://a,https://b): a worker
fails over along them; the other commands ask each in turn until one answers.
${EXIT_CODES_HELP}`)

registerStart(program)
registerWorker(program)
registerSubmit(program)
registerLogs(program)
registerStop(program)
registerList(program)
registerStatus(program)
registerToken(program)
registerServe(program)

/** How the process ends when a command stops with an error (a command that returns exits on its own). */
function exitCodeOf(e: unknown): number {
  if (e instanceof CommanderError) {
    // Commander printed the message (and the hint at --help) already.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.ok
    return EXIT.usage
  }
  if (e instanceof CliError) {
    console.error(`colony: ${e.message}`)
    return e.exitCode
  }
  console.error(`colony: unexpected error: ${(e as Error)?.stack ?? String(e)}`)
  return EXIT.failed
}

// A reader that closed its end (`colony logs JOB | head`) wants no more: stop quietly, not with a stack.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(); else throw e })

try {
  await program.parseAsync()
} catch (e) {
  await exitWhenFlushed(exitCodeOf(e))
}
