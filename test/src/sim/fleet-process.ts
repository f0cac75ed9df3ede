/**
 * A child process that runs one Fleet (fleet.ts) for index.ts, over IPC:
 *   parent → child: { cmd: 'start', opts: FleetOptions } | { cmd: 'silence', count, req } | { cmd: 'stop' }
 *   child → parent: FleetReport | { ev: 'silenced', ids, req } | { ev: 'stopped' }
 * It exits after 'stop', and when its parent goes (the IPC channel closes).
 */
import { Fleet, type FleetOptions, type FleetReport } from './fleet.js'

export type FleetCommand = { cmd: 'start'; opts: FleetOptions } | { cmd: 'silence'; count: number; req: number } | { cmd: 'stop' }
export type FleetProcessReport = FleetReport | { ev: 'silenced'; ids: string[]; req: number } | { ev: 'stopped' }

const send = (r: FleetProcessReport) => process.send!(r)
let fleet: Fleet | undefined

process.on('message', (c: FleetCommand) => {
  switch (c.cmd) {
    case 'start': fleet = new Fleet(c.opts, send); fleet.start(); return
    case 'silence': send({ ev: 'silenced', ids: fleet?.silence(c.count) ?? [], req: c.req }); return
    case 'stop':
      void (fleet?.stop() ?? Promise.resolve()).then(() => { send({ ev: 'stopped' }); process.disconnect() })
      return
  }
})
// Its parent went without a stop: the sockets go with this process.
process.on('disconnect', () => process.exit(0))
