/** A grid and a connected driver for one describe block: started before its tests, stopped after them. */
import { after, before } from 'node:test'
import { connect } from '@colony-grid/client'
import { startGrid, type GridProcs } from './harness.js'

export type Driver = Awaited<ReturnType<typeof connect>>

export function suiteGrid(opts: Parameters<typeof startGrid>[0]): { readonly g: GridProcs; readonly grid: Driver } {
  const s = {} as { g: GridProcs; grid: Driver }
  before(async () => {
    s.g = await startGrid(opts)
    s.grid = await connect(s.g.url, { token: s.g.submitToken, onLog: false, log: () => {} })
  })
  after(async () => { await s.grid?.close(); await s.g?.stop() })
  return s
}
