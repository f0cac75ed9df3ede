/**
 * How the CLI reaches a coordinator: the URLs and token a command was given (or the saved ones),
 * requests that fail over along a grid's coordinators, and the errors (with their exit codes) it stops on.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CliError, EXIT, type ExitCode } from './cli/exit-codes.js'

/** Stops the command with `msg` (printed as `colony: msg` by the entry point); a usage error unless `code` says otherwise. */
export function fail(msg: string, code: ExitCode = EXIT.usage, detail?: string): never {
  throw new CliError(msg, code, detail)
}

export function savedTokens(dataDir = '.colony'): { submit?: string; join?: string } {
  const file = join(dataDir, 'tokens.json')
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as { submit?: string; join?: string } : {}
}

export const num = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) fail(`${/^[A-Z_]+$/.test(name) ? name : `--${name}`} must be a whole number (got ${v})`)
  return n
}

/** What to do when Node refuses the coordinator's certificate (a private CA, or a self-signed one). */
export function certificateHint(message: string): string | undefined {
  return /certificate|CERT_|self.signed/i.test(message)
    ? 'Node does not trust its certificate: if it comes from a private CA (or is self-signed), run with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.'
    : undefined
}

/**
 * The coordinators to ask, and the submit token. `urls`: one URL, or a grid's coordinators (a,b,c);
 * the one that answered last comes first, so a command's later requests go straight to it.
 * `tokenFrom`: where the token came from, so that a refusal can say which one to change.
 */
export interface Target { urls: string[]; token: string; tokenFrom?: string }

export function target(values: { url?: string; token?: string }): Target {
  const urls = (values.url ?? process.env.COLONY_URL ?? 'http://127.0.0.1:8787').split(',').map((u) => u.trim()).filter(Boolean)
  if (urls.length === 0) fail('--url needs a coordinator URL (or several, comma-separated)')
  for (const u of urls) if (!URL.canParse(u)) fail(`'${u}' is not a coordinator URL (http://host:port)`)
  const env = process.env
  const [token, tokenFrom] = values.token !== undefined ? [values.token, '--token']
    : env.COLONY_TOKEN !== undefined ? [env.COLONY_TOKEN, '$COLONY_TOKEN']
    : env.COLONY_SUBMIT_TOKEN !== undefined ? [env.COLONY_SUBMIT_TOKEN, '$COLONY_SUBMIT_TOKEN']
    : [savedTokens().submit, '.colony/tokens.json']
  if (!token) fail('no submit token: pass --token, set COLONY_TOKEN, or run from the folder where colony start wrote .colony/tokens.json')
  return { urls, token, tokenFrom }
}

/**
 * Network errors that leave no doubt the request never reached the coordinator: only after these is
 * a POST or DELETE sent to the next one (after a reset mid-request, it might have run, e.g. created a job).
 */
const NOT_SENT = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|UND_ERR_CONNECT_TIMEOUT|ERR_TLS_.*|UNABLE_TO_.*|.*CERT.*)$/

/** A network failure in words, with its code for those who search for it. */
function networkFailure(e: Error, timeoutMs: number): string {
  if (e.name === 'TimeoutError') return `no answer within ${timeoutMs / 1000} s`
  const cause = e.cause as { code?: string; message?: string } | undefined
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused', ENOTFOUND: 'no such host', EAI_AGAIN: 'the host name did not resolve (DNS)',
    EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable', ECONNRESET: 'the connection was reset',
    UND_ERR_CONNECT_TIMEOUT: 'the connection timed out', UND_ERR_SOCKET: 'the connection closed',
  }
  const code = cause?.code
  return code && words[code] ? `${words[code]} (${code})` : String(cause?.message ?? cause ?? e.message)
}

/** Requests wait this long for an answer's headers unless they say otherwise (0: no limit). */
export const REQUEST_TIMEOUT_MS = 30_000

export type RequestOptions = RequestInit & { timeoutMs?: number }

/**
 * `path` from the first coordinator of `t` that answers: one that cannot be reached, or a standby (HTTP 503,
 * `{ standby: true, leader? }`), sends the request on to the next (a leader a standby names first).
 * None answers: exit code 3. The token refused (401, 403): exit code 4. A caller's own `signal`, once
 * aborted, ends the request with its reason.
 */
export async function request(t: Target, path: string, init: RequestOptions = {}): Promise<Response> {
  const { timeoutMs = REQUEST_TIMEOUT_MS, ...rest } = init
  const method = rest.method ?? 'GET'
  const failures: string[] = []
  const failed = (url: string, why: string) => failures.push(t.urls.length > 1 ? `${url}: ${why}` : why)
  for (let i = 0; i < t.urls.length; i++) {
    const url = t.urls[i]
    let res: Response
    const signal = rest.signal ?? (timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined)
    try {
      res = await fetch(new URL(path, url), { ...rest, signal, headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', ...rest.headers } })
    } catch (e) {
      if (rest.signal?.aborted) throw rest.signal.reason
      failed(url, networkFailure(e as Error, timeoutMs))
      const cause = (e as Error).cause as { code?: string } | undefined
      if (method === 'GET' || NOT_SENT.test(cause?.code ?? '')) continue
      break
    }
    if (res.status === 503) {
      const body = await res.json().catch(() => ({})) as { standby?: boolean; leader?: string }
      failed(url, `HTTP 503${body.standby ? ` (a standby${body.leader ? `; the leader is ${body.leader}` : ''})` : ''}`)
      const leader = body.leader?.replace(/\/$/, '')
      if (leader && URL.canParse(leader) && !t.urls.includes(leader)) t.urls.splice(i + 1, 0, leader)
      continue
    }
    t.urls.unshift(...t.urls.splice(i, 1))
    if (res.status === 401 || res.status === 403) await refused(t, url, res)
    return res
  }
  const hint = failures.map(certificateHint).find(Boolean) ?? 'Is it running (colony start), and is --url (or $COLONY_URL) right?'
  fail(`cannot reach the coordinator at ${t.urls.join(', ')}: ${failures.join('; ')}. ${hint}`, EXIT.unreachable, failures.join('; '))
}

/** The coordinator refused the token: say which token was sent, and which one to use. */
async function refused(t: Target, url: string, res: Response): Promise<never> {
  const body = await res.json().catch(() => ({})) as { error?: { message?: string } }
  fail(`the coordinator at ${url} refused the token from ${t.tokenFrom ?? '--token'} (HTTP ${res.status}: ${body.error?.message ?? res.statusText}). ` +
    'Use a submit token (the operator\'s is printed by colony start and saved in .colony/tokens.json; colony token create --role submit makes others): --token TOKEN or $COLONY_TOKEN.', EXIT.refused)
}

/** `path`'s JSON body; an answer that is not 2xx stops the command with the coordinator's message (exit code 1). */
export async function api(t: Target, path: string, init: RequestOptions = {}): Promise<unknown> {
  const res = await request(t, path, init)
  const text = await res.text()
  let body: { error?: { message: string } } = {}
  try { body = text ? JSON.parse(text) as typeof body : {} } catch { /* not JSON: said below if it matters */ }
  if (!res.ok) fail(`${init.method ?? 'GET'} ${path}: HTTP ${res.status}: ${body.error?.message ?? (text.slice(0, 200) || res.statusText)}`, EXIT.failed)
  return body
}
