/** Both control stores keep what was committed: SQLite across a reopen of the file, memory within the process. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, SqliteStore, type ControlStore } from '@colony-grid/coordinator'

function fill(s: ControlStore): void {
  s.putJob({ id: 'j_1', name: 'demo', state: 'running', createdAt: 1 })
  s.putTask({ id: 't.a.1', job: 'j_1', spec: { id: 't.a.1', name: 'f', fn: 'f1', args: new Uint8Array([0x90]), deps: [], opts: { maxRetries: 2 } }, state: 'waiting', attempts: 0 })
  s.putTask({ id: 't.a.2', job: 'j_1', spec: { id: 't.a.2', name: 'g', fn: 'f1', args: new Uint8Array([0x90]), deps: ['t.a.1.r0'], opts: {} }, state: 'waiting', attempts: 0 })
  s.setTaskState('t.a.1', 'finished', 1)
  s.putObject({ id: 't.a.1.r0', job: 'j_1', size: 3, inline: new Uint8Array([1, 2, 3]) })
  s.putObject({ id: 't.a.9.r0', job: 'j_1', size: 0, error: { type: 'TaskError', message: 'boom', remoteStack: 'at f' } })
  s.putActor({ id: 't.a.3', job: 'j_1', name: 'Counter', state: 'alive', peer: 'p_1', restarts: 0 })
  s.putFn('j_1', { id: 'f1', kind: 'inline', name: 'f', src: '(x) => x' })
  s.putPeer({ id: 'p_1', kind: 'node', role: 'worker', lastSeen: 5, secretHash: 'ab'.repeat(32), origin: 'k_1@127.0.0.1' })
  s.putBundle('abc123', new TextEncoder().encode('export default 1'), 'k_owner')
  s.putOrigin({ origin: 'k_1@127.0.0.1', reputation: 0.25, quarantined: true })
  s.putOrigin({ origin: 'k_2@10.0.0.1', reputation: 0.5, quarantined: false })
  s.removeOrigin('k_2@10.0.0.1')
  s.putLocation({ object: 'o.a.1', peer: 'p_1' })
  s.putLocation({ object: 'o.a.1', peer: 'p_2' })
  s.putLocation({ object: 'o.a.2', peer: 'p_1' })
  s.removeLocation({ object: 'o.a.1', peer: 'p_2' })
  s.removeLocations('o.a.2')
}

function check(s: ControlStore): void {
  const snap = s.load()
  assert.deepEqual(snap.jobs.map((j) => j.id), ['j_1'])
  assert.deepEqual(snap.tasks.map((t) => [t.id, t.state, t.attempts]), [['t.a.1', 'finished', 1], ['t.a.2', 'waiting', 0]])
  assert.deepEqual(snap.tasks[1].spec.deps, ['t.a.1.r0'])
  assert.deepEqual([...snap.objects.find((o) => o.id === 't.a.1.r0')!.inline!], [1, 2, 3])
  assert.equal(snap.objects.find((o) => o.id === 't.a.9.r0')!.error!.message, 'boom')
  assert.equal(snap.actors[0].name, 'Counter')
  assert.equal(snap.fns[0].def.id, 'f1')
  assert.equal(snap.peers[0].id, 'p_1')
  assert.deepEqual([snap.peers[0].secretHash, snap.peers[0].origin], ['ab'.repeat(32), 'k_1@127.0.0.1'])
  assert.equal(new TextDecoder().decode(s.getBundle('abc123')), 'export default 1')
  assert.deepEqual([s.bundleOwnedBy('abc123', 'k_owner'), s.bundleOwnedBy('abc123', 'k_other')], [true, false])
  assert.deepEqual(snap.origins, [{ origin: 'k_1@127.0.0.1', reputation: 0.25, quarantined: true }])
  assert.deepEqual(snap.locations, [{ object: 'o.a.1', peer: 'p_1' }])
}

describe('control stores', () => {
  it('memory keeps what was put', () => {
    const s = new MemoryStore()
    fill(s)
    s.commit()
    check(s)
  })

  it('SQLite keeps only what was committed, across a reopen of the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'colony-store-'))
    try {
      const path = join(dir, 'colony.db')
      const a = new SqliteStore(path)
      fill(a)
      assert.equal(a.load().tasks.length, 0, 'nothing is written before commit (group commit)')
      a.commit()
      a.close()
      const b = new SqliteStore(path)
      check(b)
      b.removePeer('p_1')
      b.commit()
      assert.equal(b.load().peers.length, 0)
      b.close()
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })
})
