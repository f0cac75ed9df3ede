/**
 * What `colony` exits with, in one place: scripts and CI branch on these, so each means one thing.
 * The README's CLI section and each command's --help list them.
 */
export const EXIT = {
  ok: 0,
  /** The job failed or was cancelled, or the coordinator turned the request down (no such job, a limit). */
  failed: 1,
  /** The command line was wrong (an unknown command or option, a missing argument, a file that does not bundle). */
  usage: 2,
  /** No coordinator answered: refused, unknown host, timed out, or every one a standby. */
  unreachable: 3,
  /** The coordinator refused the token (HTTP 401 or 403). */
  refused: 4,
  /** Stopped by Ctrl-C (128 + SIGINT, as shells do); `submit` cancels its job first. */
  interrupted: 130,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** A failure the user should read, with the code the process exits with; the entry point prints and exits. */
export class CliError extends Error {
  /** `detail`: what went wrong in a few words, for a line that reports the error and goes on (reconnecting…). */
  constructor(message: string, readonly exitCode: ExitCode, readonly detail = message) {
    super(message)
    this.name = 'CliError'
  }
}

/** The help text's section on exit codes (every command shows it). */
export const EXIT_CODES_HELP = `
Exit codes:
  0    done (submit: the job finished)
  1    the job failed or was cancelled; no such job; the coordinator turned the request down
  2    usage: an unknown command or option, a missing argument, a job file that does not bundle
  3    cannot reach the coordinator (--url / $COLONY_URL)
  4    the coordinator refused the token (--token / $COLONY_TOKEN)
  130  stopped by Ctrl-C (submit cancels its job first)`
