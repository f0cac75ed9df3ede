/**
 * How the CLI reaches a coordinator: the URLs and token a command was given (or the saved ones),
 * requests that fail over along a grid's coordinators, and the errors it exits with.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export function fail(msg: string): never {
  console.error(`colony: ${msg}`)
  process.exit(2)
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
 */
export interface Target { urls: string[]; token: string }

export function target(values: { url?: string; token?: string }): Target {
  const urls = (values.url ?? process.env.COLONY_URL ?? 'http://127.0.0.1:8787').split(',').map((u) => u.trim()).filter(Boolean)
  if (urls.length === 0) fail('--url needs a coordinator URL (or several, comma-separated)')
  for (const u of urls) if (!URL.canParse(u)) fail(`'${u}' is not a coordinator URL (http://host:port)`)
  const token = values.token ?? process.env.COLONY_TOKEN ?? process.env.COLONY_SUBMIT_TOKEN ?? savedTokens().submit
  if (!token) fail('no submit token: pass --token, set COLONY_TOKEN, or run from the folder where colony start wrote .colony/tokens.json')
  return { urls, token }
}

/**
 * Network errors that leave no doubt the request never reached the coordinator: only after these is
 * a POST or DELETE sent to the next one (after a reset mid-request, it might have run, e.g. created a job).
 */
const NOT_SENT = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|UND_ERR_CONNECT_TIMEOUT|ERR_TLS_.*|UNABLE_TO_.*|.*CERT.*)$/

/**
 * `path` from the first coordinator of `t` that answers: one that cannot be reached, or a standby (HTTP 503,
 * `{ standby: true, leader? }`), sends the request on to the next (a leader a standby names first).
 */
export async function request(t: Target, path: string, init: RequestInit = {}): Promise<Response> {
  const method = init.method ?? 'GET'
  const failures: string[] = []
  const failed = (url: string, why: string) => failures.push(t.urls.length > 1 ? `${url}: ${why}` : why)
  for (let i = 0; i < t.urls.length; i++) {
    const url = t.urls[i]
    let res: Response
    try {
      res = await fetch(new URL(path, url), { ...init, headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', ...init.headers } })
    } catch (e) {
      const cause = (e as Error).cause as { code?: string } | undefined
      const why = String(cause ?? (e as Error).message)
      failed(url, why)
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
    return res
  }
  const hint = failures.map(certificateHint).find(Boolean) ?? 'Is it running (npm start)?'
  fail(`cannot reach the coordinator at ${t.urls.join(', ')}: ${failures.join('; ')}. ${hint}`)
}

export async function api(t: Target, path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await request(t, path, init)
  const body = await res.json().catch(() => ({})) as { error?: { message: string } }
  if (!res.ok) fail(`${init.method ?? 'GET'} ${path}: HTTP ${res.status}: ${body.error?.message ?? res.statusText}`)
  return body
}
