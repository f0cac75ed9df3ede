/**
 * The `colony` command line: one commander Command per subcommand, each with its own options, help
 * text and examples. Conventions every command shares live here: --url/--token, the exit codes in
 * every --help, usage errors that point at the command's own --help, and one-shot commands that exit
 * with what they return.
 */
import { Command, InvalidArgumentError } from 'commander'
import { EXIT_CODES_HELP } from './exit-codes.js'

/** A subcommand of `parent`, with the settings it inherits (exitOverride, output) and a hint at its own --help after a usage error. */
export function subcommand(parent: Command, name: string, description: string): Command {
  const cmd = parent.command(name).description(description)
  const path: string[] = []
  for (let c: Command | null = cmd; c; c = c.parent) path.unshift(c.name())
  return cmd.showHelpAfterError(`(${path.join(' ')} --help shows its usage)`)
}

/** --url and --token: which coordinator, and whose submit token. */
export function withTarget(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'the coordinator, or a grid\'s coordinators comma-separated (default: $COLONY_URL, else http://127.0.0.1:8787)')
    .option('--token <token>', 'a submit token (default: $COLONY_TOKEN, else .colony/tokens.json, which colony start writes)')
}

/** Examples and the exit codes, after the command's options in its --help. */
export function helpAfter(cmd: Command, examples: string[], exitCodes = true): Command {
  return cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}\n${exitCodes ? EXIT_CODES_HELP : ''}`)
}

/** An option's value as a whole number (0 or more); anything else is a usage error naming the option. */
export function wholeNumber(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError('It must be a whole number.')
  return n
}

/** An option's value in seconds (a positive number), as milliseconds. */
export function seconds(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('It must be a number of seconds above 0.')
  return n * 1000
}

/**
 * An action that does its work and ends: the process exits with the code it returns (0 if none),
 * whatever sockets or timers are still open, once what it printed is out (exitWhenFlushed).
 */
export function oneShot<A extends unknown[]>(run: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => exitWhenFlushed((await run(...args)) ?? 0)
}

/**
 * Exits with `code` once stdout and stderr have passed on everything written to them. A pipe takes
 * only what its reader has room for (64 KiB on Linux) and Node queues the rest: `process.exit()` right
 * after a big write would drop it (`colony logs JOB | wc -l` short of lines).
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  process.exitCode = code
  await Promise.all([process.stdout, process.stderr].map(flushed))
  process.exit(code)
}

/** Resolves when what was written to `stream` before is out (or the stream is gone: a reader that closed its end). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) resolve()
    else stream.write('', () => resolve())
  })
}
