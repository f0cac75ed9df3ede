/** Lists the coordinator serves a page at a time (`Page<T>`: `?limit=&cursor=`, see shared/src/protocol.ts). */
import type { Page } from '@colony-grid/shared'
import { api, type Target } from '../cli-target.js'

/**
 * Up to `max` items of the list at `path` (all of them without `max`), page after page. `query`: the list's
 * filters (`state`, ...). Calls `onPage` with each page as it comes, for output that should not wait for the end.
 */
export async function readPages<T>(t: Target, path: string, opts: { query?: Record<string, string | undefined>; max?: number; pageSize?: number; onPage?: (items: T[]) => void } = {}): Promise<{ items: T[]; total: number }> {
  const items: T[] = []
  let cursor: string | undefined
  let total = 0
  for (;;) {
    const want = opts.max === undefined ? opts.pageSize : Math.min(opts.pageSize ?? opts.max, opts.max - items.length)
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) params.set(k, v)
    if (want !== undefined) params.set('limit', String(want))
    if (cursor) params.set('cursor', cursor)
    const page = await api(t, `${path}${params.size ? `?${params}` : ''}`) as Page<T>
    const fresh = opts.max === undefined ? page.items : page.items.slice(0, opts.max - items.length)
    items.push(...fresh)
    total = page.total
    opts.onPage?.(fresh)
    if (!page.truncated || !page.next || (opts.max !== undefined && items.length >= opts.max)) return { items, total }
    cursor = page.next
  }
}
