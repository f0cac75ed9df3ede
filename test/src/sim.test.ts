/**
 * The peer simulator (sim/) against a real coordinator: hundreds of simulated peers join, take
 * tasks and leave; a peer that stops its heartbeats IS declared dead (so the false-death figure
 * can fail); and a coordinator frozen past the heartbeat timeout does not blame its peers for it.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '@colony-grid/client'
import { startGrid, until } from './harness.js'
import { startSimulatedPeers } from './sim/index.js'
import { listedPeers, peerInfos } from './sim/peers-api.js'

describe('simulated peers', () => {
  it('500 join from 2 processes, take 3,000 tasks spread over them (every result right), leave, and are gone from /api/peers', async () => {
    const g = await startGrid({ workers: 0, memory: true })
    try {
      const sim = await startSimulatedPeers({ url: g.url, joinToken: g.joinToken, peers: 500, processes: 2, kinds: ['node', 'browser'] })
      try {
        await sim.joined
        assert.equal(new Set(sim.peerIds).size, 500)
        const listed = await peerInfos(g.url, g.submitToken)
        const ours = listed.filter((p) => sim.peerIds.includes(p.id))
        assert.equal(ours.length, 500, 'the coordinator lists every simulated peer')
        assert.deepEqual(new Set(ours.map((p) => p.kind)), new Set(['node', 'browser']))
        assert.ok(ours.every((p) => p.role === 'worker' && p.capabilities.includes('sim') && [1, 2].includes(p.resources.cpu)))

        const grid = await connect(g.url, { token: g.submitToken, onLog: false, log: () => {} })
        try {
          const echo = grid.remote((x: number) => x, { capabilities: ['sim'] })
          const values = await grid.get(Array.from({ length: 3000 }, (_, i) => echo.remote(i)), { timeoutMs: 60_000 })
          values.forEach((v, i) => assert.equal(v, i, `task ${i}'s result`))
        } finally { await grid.close() }
        // The fleets report their counts every 100 ms.
        await until(async () => sim.tasksDone >= 3000, 5000, 'the simulated peers count 3,000 tasks answered')
        assert.equal(sim.tasksDone, 3000)
        const worked = (await peerInfos(g.url, g.submitToken)).filter((p) => p.tasksDone > 0).length
        assert.ok(worked >= 250, `tasks spread over many peers: ${worked} of 500 ran some`)
        assert.deepEqual(sim.deaths, [], 'no simulated peer was dropped')
      } finally { await sim.stop() }
      await until(async () => { const left = await listedPeers(g.url, g.submitToken); return sim.peerIds.every((id) => !left.has(id)) }, 10_000, 'every simulated peer gone from /api/peers')
    } finally { await g.stop() }
  })

  it('a peer that stops its heartbeats is declared dead; the others are not', async () => {
    const g = await startGrid({ workers: 0, memory: true, env: { COLONY_HEARTBEAT_TIMEOUT_MS: '3000' } })
    try {
      const sim = await startSimulatedPeers({ url: g.url, joinToken: g.joinToken, peers: 20, processes: 1 })
      try {
        await sim.joined
        const silenced = await sim.silence(3)
        assert.equal(silenced.length, 3)
        await until(async () => sim.deaths.length >= 3, 10_000, 'the silenced peers declared dead')
        assert.deepEqual(new Set(sim.deaths.map((d) => d.peerId)), new Set(silenced))
        assert.ok(sim.deaths.every((d) => d.code === 4008 && /heartbeat/.test(d.reason) && d.silenced), JSON.stringify(sim.deaths))
        const left = await listedPeers(g.url, g.submitToken)
        assert.ok(silenced.every((id) => !left.has(id)))
        assert.equal(sim.peerIds.filter((id) => left.has(id)).length, 17)
      } finally { await sim.stop() }
    } finally { await g.stop() }
  })

  it('a coordinator frozen for longer than the heartbeat timeout drops none of its live peers when it resumes', async () => {
    const g = await startGrid({ workers: 0, memory: true, env: { COLONY_HEARTBEAT_TIMEOUT_MS: '3000' } })
    try {
      const sim = await startSimulatedPeers({ url: g.url, joinToken: g.joinToken, peers: 50, processes: 1 })
      try {
        await sim.joined
        // SIGSTOP: as a coordinator starved of CPU, or paused by its VM, is; its peers keep pinging into the socket buffers.
        g.coordinator.child.kill('SIGSTOP')
        await new Promise((r) => setTimeout(r, 5000))
        g.coordinator.child.kill('SIGCONT')
        // Two heartbeat timeouts: a peer wrongly judged would be gone by now.
        await new Promise((r) => setTimeout(r, 6000))
        assert.deepEqual(sim.deaths, [], 'no live peer was declared dead')
        assert.match(g.coordinator.output(), /no peer is dropped for it/, 'the coordinator says it was starved')
        const left = await listedPeers(g.url, g.submitToken)
        assert.equal(sim.peerIds.filter((id) => left.has(id)).length, 50)
      } finally { await sim.stop() }
    } finally { await g.stop() }
  })
})
