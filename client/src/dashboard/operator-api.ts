/**
 * The dashboard's requests: this page's coordinator, with the operator's token. A refused token
 * or an unreachable coordinator becomes an ApiProblem whose message says what to do.
 */

export class ApiProblem extends Error {
  /** `auth`: the token is missing, wrong or not the operator's; `down`: no answer; `http`: another error. */
  constructor(readonly kind: 'auth' | 'down' | 'http' | 'missing', message: string, readonly status = 0) { super(message) }
}

export interface OperatorApi {
  get<T>(path: string): Promise<T>
  /** Like get, but a route this coordinator does not have (404) is undefined, not an error: serving's, for one. */
  optional<T>(path: string): Promise<T | undefined>
  send<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<T>
}

export function operatorApi(token: () => string, origin = location.origin): OperatorApi {
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const t = token()
    if (!t) throw new ApiProblem('auth', 'Paste the operator token: the submit token `colony start` prints (it is in the links it prints, after #token=).')
    const headers: Record<string, string> = { authorization: `Bearer ${t}` }
    if (body !== undefined) headers['content-type'] = 'application/json'
    try {
      return await fetch(new URL(path, origin), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    } catch (e) {
      throw new ApiProblem('down', `cannot reach the coordinator at ${origin} (${(e as Error).message}): is it running?`)
    }
  }
  const read = async <T>(res: Response, path: string): Promise<T> => {
    const body = await res.json().catch(() => undefined) as { error?: { code?: string; message?: string } } | undefined
    if (res.ok) return body as T
    const message = body?.error?.message ?? `HTTP ${res.status}`
    if (res.status === 401 || res.status === 403) {
      throw new ApiProblem('auth', `The coordinator refused this token: ${message}.`, res.status)
    }
    if (res.status === 404) throw new ApiProblem('missing', `${path}: ${message}`, 404)
    throw new ApiProblem('http', `${path}: ${message}`, res.status)
  }
  return {
    async get<T>(path: string) { return read<T>(await call('GET', path), path) },
    async optional<T>(path: string) {
      try { return await read<T>(await call('GET', path), path) } catch (e) {
        if (e instanceof ApiProblem && e.kind === 'missing') return undefined
        throw e
      }
    },
    async send<T>(method: 'POST' | 'DELETE', path: string, body?: unknown) { return read<T>(await call(method, path, body), path) },
  }
}
