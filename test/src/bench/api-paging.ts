/**
 * The paging figure: a job of 100,000 no-op tasks, queued (no worker), on a coordinator with its
 * SQLite store, and GET /api/jobs/:id/tasks one page of 100 at a time, over HTTP with keep-alive:
 * the first page, one from the middle, the last (newest first), and one with a state filter that
 * matches nothing (it reads past every task: the worst a filter does). p95 over them all.
 * Baseline: the whole list, as the API gave it before it paged, read as 10 pages of 10,000.
 */
import { connect, type ObjectRef } from '@colony-grid/client'
import type { JobInfo, Page, TaskInfo } from '@colony-grid/shared'
import { startGrid } from '../harness.js'

export interface PagingFigures {
  /** One page of 100 tasks, p95 over the cursors below. */
  pageP95Ms: number
  /** p95 of each kind of page. */
  byKind: Record<string, number>
  /** Reading all 100,000 tasks (10 pages of 10,000): what one request for the whole list cost. */
  wholeListMs: number
}

const N = 100_000, ROUNDS = 40

export async function pagingFigures(): Promise<PagingFigures> {
  const g = await startGrid({ workers: 0 })
  try {
    const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
    try {
      const get = async <T>(path: string): Promise<T> => {
        const res = await fetch(new URL(path, g.url), { headers: { authorization: `Bearer ${g.submitToken}` } })
        if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`)
        return await res.json() as T
      }
      const noop = grid.remote(function noop() { return null })
      // Held, so that none is freed meanwhile.
      const refs: ObjectRef<unknown>[] = []
      for (let i = 0; i < N; i++) refs.push(noop.remote())
      const deadline = Date.now() + 120_000
      for (;;) {
        const job = await get<JobInfo>(`/api/jobs/${grid.jobId}`)
        if (Object.values(job.tasks).reduce((a, b) => a + b, 0) >= N) break
        if (Date.now() > deadline) throw new Error(`the coordinator holds only part of the ${N} tasks after 120 s`)
        await new Promise((r) => setTimeout(r, 100))
      }
      const tasks = `/api/jobs/${grid.jobId}/tasks`
      // The middle: the cursor after the fifth page of 10,000.
      let middle: string | undefined
      for (let i = 0; i < 5; i++) middle = (await get<Page<TaskInfo>>(`${tasks}?limit=10000${middle ? `&cursor=${middle}` : ''}`)).next
      const kinds: Record<string, string> = {
        first: `${tasks}?limit=100`,
        middle: `${tasks}?limit=100&cursor=${middle}`,
        last: `${tasks}?limit=100&order=desc`,
        filtered: `${tasks}?limit=100&state=running`,
      }
      const all: number[] = [], byKind: Record<string, number> = {}
      for (const [kind, path] of Object.entries(kinds)) {
        for (let i = 0; i < 5; i++) await get(path) // the code paths warm (JIT), as on a coordinator that has served a while
        const times: number[] = []
        for (let i = 0; i < ROUNDS; i++) {
          const t0 = performance.now()
          const page = await get<Page<TaskInfo>>(path)
          times.push(performance.now() - t0)
          if (page.total !== (kind === 'filtered' ? 0 : N)) throw new Error(`${kind} page: total ${page.total}`)
        }
        byKind[kind] = p95(times)
        all.push(...times)
      }
      const t0 = performance.now()
      let cursor: string | undefined, read = 0
      do {
        const page: Page<TaskInfo> = await get(`${tasks}?limit=10000${cursor ? `&cursor=${cursor}` : ''}`)
        read += page.items.length
        cursor = page.next
      } while (cursor)
      const wholeListMs = performance.now() - t0
      if (read !== N) throw new Error(`read ${read} tasks of ${N}`)
      if (refs.length !== N) throw new Error('lost refs')
      return { pageP95Ms: p95(all), byKind, wholeListMs }
    } finally { await grid.close() }
  } finally { await g.stop() }
}

function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.95) - 1)]
}
