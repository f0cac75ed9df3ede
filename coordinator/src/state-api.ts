/**
 * Named state (like Ray GCS's internal KV): bytes a driver keeps in the grid under a key, so that
 * another driver picks them up after this one, or the coordinator, died (the tuning library keeps a
 * search's trials and checkpoints here). Keys belong to the submit token that wrote them: no other
 * token sees them, not even the operator's. A PUT is answered once the store holds it durably
 * (store/types.ts StateTable); retention drops a state not written for `keepStateMs`.
 */
import type { Context, Hono } from 'hono'
import { LimitError, ProtocolError } from '@colony-grid/shared'
import type { ControlStore } from './store/types.js'
import type { TokenGrant } from './tokens.js'
import { HttpNotFound } from './http-errors.js'

export interface StateApiOptions {
  /** The store as it is now (a standby that takes over opens its own). */
  store: () => ControlStore
  /** The caller's grant, if its role is one of these (server.ts); else an AuthError. */
  needRole: (c: Context, allowed: ('driver' | 'worker')[]) => TokenGrant
  maxStateBytes: number
}

export const DEFAULT_MAX_STATE_BYTES = 32 * 1024 * 1024
const MAX_KEY_CHARS = 256
const KEY_CHARS = /^[A-Za-z0-9._~/-]*$/
const ROUTE = '/api/state'
const KEY_RULE = `a key is 1–${MAX_KEY_CHARS} characters of A–Z a–z 0–9 . _ ~ - and /, in segments joined by single slashes (none empty, "." or "..")`

/** What is wrong with `key` as a state key, or undefined when nothing is. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'it is empty'
  if (key.length > MAX_KEY_CHARS) return `it is ${key.length} characters long`
  if (!KEY_CHARS.test(key)) return 'it has a character outside the allowed ones'
  if (key.split('/').some((s) => s === '' || s === '.' || s === '..')) return 'a segment is empty, "." or ".."'
  return undefined
}

export function mountStateApi(app: Hono, o: StateApiOptions): void {
  const { needRole, maxStateBytes } = o
  /** The key in the path, as the client meant it (percent-escapes decoded), if it is a good one. */
  const keyOf = (c: Context): string => {
    const raw = new URL(c.req.url).pathname.slice(ROUTE.length + 1)
    let key: string
    try { key = decodeURIComponent(raw) } catch { key = raw }
    const problem = keyProblem(key)
    if (problem) throw new ProtocolError(`bad state key ${JSON.stringify(key.slice(0, MAX_KEY_CHARS + 20))}: ${problem}; ${KEY_RULE}`)
    return key
  }
  const tooLarge = (size: string) => new LimitError('maxStateBytes',
    `the state is ${size}; a state holds at most ${maxStateBytes} bytes. Store less under one key (split it over several), or raise the limit: COLONY_MAX_STATE_BYTES for colony start, maxStateBytes for startCoordinator`)

  // Listed before the wildcard routes, which would take /api/state itself as an empty key.
  app.get(ROUTE, async (c) => {
    const grant = needRole(c, ['driver'])
    const prefix = c.req.query('prefix') ?? ''
    if (prefix.length > MAX_KEY_CHARS || !KEY_CHARS.test(prefix)) throw new ProtocolError(`bad prefix ${JSON.stringify(prefix.slice(0, MAX_KEY_CHARS + 20))}: ${KEY_RULE}`)
    return c.json(await o.store().states.list(grant.id, prefix))
  })
  app.put(`${ROUTE}/*`, async (c) => {
    const grant = needRole(c, ['driver'])
    const key = keyOf(c)
    const value = await bodyWithin(c, maxStateBytes, tooLarge)
    const updatedAt = Date.now()
    await o.store().states.put(grant.id, key, value, updatedAt)
    return c.json({ key, size: value.byteLength, updatedAt })
  })
  app.get(`${ROUTE}/*`, async (c) => {
    const grant = needRole(c, ['driver'])
    const key = keyOf(c)
    const state = await o.store().states.get(grant.id, key)
    if (!state) throw new HttpNotFound(`no state ${key} (this token never wrote it, deleted it, or it was not written for COLONY_KEEP_STATE_MS and expired)`)
    const { value, updatedAt } = state
    return c.body(new Uint8Array(value.buffer, value.byteOffset, value.byteLength) as Uint8Array<ArrayBuffer>, 200, {
      'content-type': 'application/octet-stream', 'cache-control': 'no-store',
      'x-colony-updated-at': String(updatedAt), 'last-modified': new Date(updatedAt).toUTCString(),
    })
  })
  app.delete(`${ROUTE}/*`, async (c) => {
    const grant = needRole(c, ['driver'])
    await o.store().states.remove(grant.id, keyOf(c))
    return c.body(null, 204)
  })
}

/** The request's body, refused past `max` bytes before any more is read: by its declared length, else as it streams in. */
async function bodyWithin(c: Context, max: number, tooLarge: (size: string) => Error): Promise<Uint8Array> {
  const declared = Number(c.req.header('content-length'))
  if (declared > max) throw tooLarge(`${declared} bytes`)
  const body = c.req.raw.body
  if (!body) return new Uint8Array(0)
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) { await reader.cancel(); throw tooLarge(`over ${max} bytes`) }
    chunks.push(value)
  }
  return Buffer.concat(chunks, size)
}
