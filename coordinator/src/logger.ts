/**
 * The coordinator's log (pino): one JSON object a line for log collectors (Loki, Elasticsearch,
 * `journalctl -o cat | jq`), or pino-pretty's coloured lines for a person at a terminal.
 *
 *   COLONY_LOG_FORMAT  json | pretty   default: pretty when stdout is a terminal and NODE_ENV is not
 *                                      'production', JSON otherwise (a pipe, a file, a supervisor)
 *   COLONY_LOG_LEVEL   trace | debug | info | warn | error | fatal | silent   default: info
 *
 * The control plane logs through `(line: string) => void` (ControlOptions.log), which `lineLogger`
 * turns into calls at the level each line's wording says.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino'
import pretty from 'pino-pretty'

export type { Logger } from 'pino'

export type LogFormat = 'json' | 'pretty'
const LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

export interface LoggerOptions {
  format?: LogFormat
  level?: LevelWithSilent
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream
  /**
   * Every line carries it as `component` (default 'coordinator'); null: none, for a process that
   * makes a child per component (pino repeats a key a child binds again).
   */
  component?: string | null
}

/** What the environment asks for (see the top of this file); throws with what is allowed when a value is not. */
export function logSettingsFromEnv(env: NodeJS.ProcessEnv = process.env, isTty = !!process.stdout.isTTY): { format: LogFormat; level: LevelWithSilent } {
  const format = env.COLONY_LOG_FORMAT || (isTty && env.NODE_ENV !== 'production' ? 'pretty' : 'json')
  if (format !== 'json' && format !== 'pretty') throw new Error(`COLONY_LOG_FORMAT must be json or pretty (got ${format})`)
  const level = (env.COLONY_LOG_LEVEL || 'info').toLowerCase()
  if (!LEVELS.includes(level)) throw new Error(`COLONY_LOG_LEVEL must be one of ${LEVELS.join(', ')} (got ${env.COLONY_LOG_LEVEL})`)
  return { format, level: level as LevelWithSilent }
}

/** A pino logger; unset options come from the environment. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const fromEnv = logSettingsFromEnv()
  const format = opts.format ?? fromEnv.format
  const base = { level: opts.level ?? fromEnv.level, base: { pid: process.pid, ...(opts.component === null ? {} : { component: opts.component ?? 'coordinator' }) } }
  if (format === 'pretty') {
    // In this thread, synchronously (no transport worker): a line is out before the process can exit.
    // One line per record: the component before the message, and the access log's fields only in its message.
    const stream = pretty({
      sync: true, colorize: opts.destination ? false : !!process.stdout.isTTY, ignore: 'pid,hostname,component,http',
      messageFormat: '{if component}{component}: {end}{msg}', ...(opts.destination ? { destination: opts.destination } : {}),
    })
    return pino(base, stream)
  }
  return opts.destination ? pino(base, opts.destination) : pino(base, pino.destination({ dest: 1, sync: true }))
}

/** The level a control-plane line belongs at, from its wording. */
export function levelOfLine(line: string): 'info' | 'warn' | 'error' {
  if (/^(HTTP \S+ \S+ failed:|error handling |could not take over)/.test(line)) return 'error'
  if (/^(warning|cannot |could not |lost the leader lease|leader lease \S+(:| lost))|disagreed with the quorum/i.test(line)) return 'warn'
  return 'info'
}

/** `log(line)` for the control plane, at the level its wording says. */
export function lineLogger(logger: Logger): (line: string) => void {
  return (line) => logger[levelOfLine(line)](line)
}
