/**
 * Pages of the HTTP API's lists (`Page<T>`, protocol.ts): `?limit=&cursor=&state=&order=` read
 * and checked here, and one page cut from a list kept in ascending sequence numbers.
 *
 * A cursor is the sequence number of the last item of the page before (insertion order, never
 * reused), so it stays valid while items are added or dropped: the next page starts after it,
 * wherever it now is. Finding it is a binary search, and a page reads only what it returns
 * (plus, with a state filter, the items it skips), never the whole list.
 */
import { PAGE_LIMITS, ProtocolError, type Page } from '@colony-grid/shared'

export type Order = 'asc' | 'desc'

export interface PageQuery<S extends string = string> {
  limit: number
  /** The `next` of the page before: the sequence number of its last item. */
  cursor?: number
  order: Order
  /** Keep only items in these states (none: all). */
  states?: ReadonlySet<S>
}

/** What a list takes: its name (for errors), its states (none: it has no `state` filter), its default order. */
export interface ListShape<S extends string> { what: string; states?: readonly S[]; order?: Order }

/**
 * Reads a page's query parameters; a bad one is a ProtocolError (HTTP 400) that says what is
 * allowed. `param`: a query parameter by name (Hono's `c.req.query`).
 */
export function pageQuery<S extends string>(param: (name: string) => string | undefined, shape: ListShape<S>): PageQuery<S> {
  const q: PageQuery<S> = { limit: PAGE_LIMITS.default, order: shape.order ?? 'asc' }
  const limit = param('limit')
  if (limit !== undefined) {
    if (!/^\d{1,6}$/.test(limit) || Number(limit) < 1 || Number(limit) > PAGE_LIMITS.max) {
      throw new ProtocolError(`limit must be a whole number from 1 to ${PAGE_LIMITS.max} (got "${clipped(limit)}"); leave it out for ${PAGE_LIMITS.default}`)
    }
    q.limit = Number(limit)
  }
  const cursor = param('cursor')
  if (cursor !== undefined && cursor !== '') {
    if (!/^\d{1,15}$/.test(cursor)) throw new ProtocolError(`cursor "${clipped(cursor)}" is not one this API gave: pass the "next" of the page before, or leave it out for the first page`)
    q.cursor = Number(cursor)
  }
  const order = param('order')
  if (order !== undefined) {
    if (order !== 'asc' && order !== 'desc') throw new ProtocolError(`order must be "asc" (oldest first) or "desc" (newest first), not "${clipped(order)}"`)
    q.order = order
  }
  const state = param('state')
  if (state !== undefined && state !== '') {
    if (!shape.states) throw new ProtocolError(`${shape.what} have no states to filter by: leave out "state"`)
    const wanted = state.split(',').map((s) => s.trim()).filter(Boolean)
    const unknown = wanted.filter((s) => !(shape.states as readonly string[]).includes(s))
    if (unknown.length > 0 || wanted.length === 0) {
      throw new ProtocolError(`state "${clipped(unknown[0] ?? state)}" is not a state of ${shape.what}: use one of ${shape.states.join(', ')}, or several separated by commas`)
    }
    q.states = new Set(wanted as S[])
  }
  return q
}

/** A list in ascending sequence numbers, read by index. */
export interface SeqOrdered { readonly length: number; seqAt(i: number): number }

/** The first index whose sequence number is greater than `seq` (the length if none is). */
export function firstAfter(list: SeqOrdered, seq: number): number {
  let lo = 0, hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list.seqAt(mid) > seq) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * One page of `list`, in the query's order from its cursor: `view(i)` of each index that
 * `match`es (all, without a filter), up to `limit`. `total`: how many match in all (the caller
 * keeps that count, or counts it). `truncated` is found by looking for one more match.
 */
export function pageOf<T>(list: SeqOrdered, q: PageQuery, total: number, view: (i: number) => T, match?: (i: number) => boolean): Page<T> {
  const items: T[] = []
  const asc = q.order === 'asc'
  let i = q.cursor === undefined ? (asc ? 0 : list.length - 1)
    : asc ? firstAfter(list, q.cursor) : firstAfter(list, q.cursor - 1) - 1
  const step = asc ? 1 : -1
  let last = -1
  for (; i >= 0 && i < list.length; i += step) {
    if (match && !match(i)) continue
    if (items.length === q.limit) return { items, total, truncated: true, next: String(list.seqAt(last)) }
    items.push(view(i))
    last = i
  }
  return { items, total, truncated: false }
}

const clipped = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s)
