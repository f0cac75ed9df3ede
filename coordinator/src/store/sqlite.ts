import Database from 'better-sqlite3'
import { mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { decodeFrame, encodeFrame, returnId, type FnDef, type SerializedError, type TaskState } from '@colony-grid/shared'
import type { ActorRow, ControlStore, JobRow, LocationRow, ObjectRow, OriginRow, PeerRow, StateInfo, StoreSnapshot } from './types.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job TEXT NOT NULL, spec BLOB NOT NULL, main INTEGER NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL, error BLOB, result BLOB, result_size INTEGER);
CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, job TEXT NOT NULL, size INTEGER NOT NULL, inline BLOB, error BLOB, hash TEXT);
CREATE TABLE IF NOT EXISTS actors (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS peers (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS fns (job TEXT NOT NULL, id TEXT NOT NULL, def BLOB NOT NULL, PRIMARY KEY (job, id));
CREATE TABLE IF NOT EXISTS bundles (hash TEXT PRIMARY KEY, code BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bundle_owners (hash TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (hash, owner));
CREATE TABLE IF NOT EXISTS origins (origin TEXT PRIMARY KEY, reputation REAL NOT NULL, quarantined INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS locations (object TEXT NOT NULL, peer TEXT NOT NULL, PRIMARY KEY (object, peer));
CREATE TABLE IF NOT EXISTS states (owner TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, key));
CREATE INDEX IF NOT EXISTS states_by_time ON states (updated_at);
`

// Rows are msgpack blobs: one codec for the wire and the disk, and no per-row JSON.
const pack = (v: unknown): Buffer => Buffer.from(encodeFrame([v]))
const unpack = <T>(b: Uint8Array): T => decodeFrame(b)[0] as T
const packErr = (e?: SerializedError): Buffer | null => (e ? pack(e) : null)
const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)
/** Pages given back to the file system per commit: about 1 MiB at SQLite's 4 KiB pages. */
const VACUUM_STEP_PAGES = 256

type Write = () => void

/**
 * better-sqlite3 in WAL mode. Writes are queued and run in one transaction per
 * commit(), which the coordinator calls once per event-loop turn (group commit).
 */
export class SqliteStore implements ControlStore {
  readonly kind = 'sqlite' as const
  private db: Database.Database
  private queue: Write[] = []
  private stmt
  private commitQueued: () => void

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    // Deleted rows give their pages back to the file (retention), a few at a time after each commit.
    // It must be set before the first table, and before WAL (which cannot change it): a file made
    // before this setting is converted once, by a VACUUM out of WAL mode.
    if (this.db.pragma('auto_vacuum', { simple: true }) !== 2) {
      const fresh = (this.db.prepare('SELECT COUNT(*) AS n FROM sqlite_master').get() as { n: number }).n === 0
      this.db.pragma('journal_mode = DELETE')
      this.db.pragma('auto_vacuum = INCREMENTAL')
      if (!fresh) this.db.exec('VACUUM')
    }
    this.db.pragma('journal_mode = WAL')
    // WAL + NORMAL is durable across a process crash (kill -9); only an OS crash can lose the last commit.
    this.db.pragma('synchronous = NORMAL')
    // The WAL file shrinks back to this after a checkpoint, rather than keeping its largest size.
    this.db.pragma('journal_size_limit = 16777216')
    this.db.exec(SCHEMA)
    this.db.exec('CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks (job); CREATE INDEX IF NOT EXISTS objects_by_job ON objects (job)')
    // Files from before a column existed.
    for (const [table, col] of [['tasks', 'result BLOB'], ['tasks', 'result_size INTEGER'], ['objects', 'hash TEXT']]) {
      try { this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${col}`) } catch { /* already there */ }
    }
    const db = this.db
    this.stmt = {
      job: db.prepare('INSERT OR REPLACE INTO jobs (id, body) VALUES (?, ?)'),
      task: db.prepare('INSERT OR IGNORE INTO tasks (id, job, spec, main, state, attempts, error) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      taskState: db.prepare('UPDATE tasks SET state = ?, attempts = ?, error = ? WHERE id = ?'),
      taskFinish: db.prepare("UPDATE tasks SET state = 'finished', attempts = ?, result = ?, result_size = ? WHERE id = ?"),
      object: db.prepare('INSERT OR REPLACE INTO objects (id, job, size, inline, error, hash) VALUES (?, ?, ?, ?, ?, ?)'),
      actor: db.prepare('INSERT OR REPLACE INTO actors (id, body) VALUES (?, ?)'),
      peer: db.prepare('INSERT OR REPLACE INTO peers (id, body) VALUES (?, ?)'),
      peerDel: db.prepare('DELETE FROM peers WHERE id = ?'),
      origin: db.prepare('INSERT OR REPLACE INTO origins (origin, reputation, quarantined) VALUES (?, ?, ?)'),
      originDel: db.prepare('DELETE FROM origins WHERE origin = ?'),
      location: db.prepare('INSERT OR IGNORE INTO locations (object, peer) VALUES (?, ?)'),
      locationDel: db.prepare('DELETE FROM locations WHERE object = ? AND peer = ?'),
      locationsDel: db.prepare('DELETE FROM locations WHERE object = ?'),
      fn: db.prepare('INSERT OR IGNORE INTO fns (job, id, def) VALUES (?, ?, ?)'),
      bundle: db.prepare('INSERT OR IGNORE INTO bundles (hash, code) VALUES (?, ?)'),
      bundleOwner: db.prepare('INSERT OR IGNORE INTO bundle_owners (hash, owner) VALUES (?, ?)'),
      bundleGet: db.prepare('SELECT code FROM bundles WHERE hash = ?'),
      bundleDel: db.prepare('DELETE FROM bundles WHERE hash = ?'),
      bundleOwnersDel: db.prepare('DELETE FROM bundle_owners WHERE hash = ?'),
      jobDel: db.prepare('DELETE FROM jobs WHERE id = ?'),
      jobTasksDel: db.prepare('DELETE FROM tasks WHERE job = ?'),
      jobLocationsDel: db.prepare('DELETE FROM locations WHERE object IN (SELECT id FROM objects WHERE job = ?)'),
      jobObjectsDel: db.prepare('DELETE FROM objects WHERE job = ?'),
      jobFnsDel: db.prepare('DELETE FROM fns WHERE job = ?'),
      actorDel: db.prepare('DELETE FROM actors WHERE id = ?'),
      taskDel: db.prepare('DELETE FROM tasks WHERE id = ?'),
      objectDel: db.prepare('DELETE FROM objects WHERE id = ?'),
      state: db.prepare('INSERT OR REPLACE INTO states (owner, key, value, updated_at) VALUES (?, ?, ?, ?)'),
      stateGet: db.prepare('SELECT value, updated_at FROM states WHERE owner = ? AND key = ?'),
      stateDel: db.prepare('DELETE FROM states WHERE owner = ? AND key = ?'),
      // From the prefix on, in key order (the primary key's index): list stops at the first key past it.
      stateKeys: db.prepare('SELECT key, length(value) AS size, updated_at FROM states WHERE owner = ? AND key >= ? ORDER BY key'),
      statesExpire: db.prepare('DELETE FROM states WHERE updated_at < ?'),
    }
    this.commitQueued = db.transaction(() => { for (const write of this.queue) write() })
  }


  async load(): Promise<StoreSnapshot> {
    const rows = <T>(sql: string) => this.db.prepare(sql).all() as T[]
    type TaskDbRow = { id: string; job: string; spec: Buffer; main: number; state: TaskState; attempts: number; error: Buffer | null; result: Buffer | null; result_size: number | null }
    const taskRows = rows<TaskDbRow>('SELECT * FROM tasks ORDER BY rowid')
    const objects: ObjectRow[] = rows<{ id: string; job: string; size: number; inline: Buffer | null; error: Buffer | null; hash: string | null }>('SELECT * FROM objects').map((r) => ({
      id: r.id, job: r.job, size: r.size, inline: r.inline ?? undefined, error: r.error ? unpack<SerializedError>(r.error) : undefined, hash: r.hash ?? undefined,
    }))
    for (const r of taskRows) {
      if (r.result_size !== null) objects.push({ id: returnId(r.id), job: r.job, size: r.result_size, inline: r.result ?? undefined })
    }
    return {
      jobs: rows<{ body: Buffer }>('SELECT body FROM jobs').map((r) => unpack<JobRow>(r.body)),
      tasks: taskRows.map((r) => ({
        id: r.id, job: r.job, spec: unpack(r.spec), main: r.main === 1, state: r.state, attempts: r.attempts,
        error: r.error ? unpack<SerializedError>(r.error) : undefined,
      })),
      objects,
      actors: rows<{ body: Buffer }>('SELECT body FROM actors').map((r) => unpack<ActorRow>(r.body)),
      peers: rows<{ body: Buffer }>('SELECT body FROM peers').map((r) => unpack<PeerRow>(r.body)),
      origins: rows<{ origin: string; reputation: number; quarantined: number }>('SELECT * FROM origins')
        .map((r) => ({ origin: r.origin, reputation: r.reputation, quarantined: r.quarantined === 1 })),
      locations: rows<LocationRow>('SELECT object, peer FROM locations'),
      fns: rows<{ job: string; def: Buffer }>('SELECT job, def FROM fns').map((r) => ({ job: r.job, def: unpack<FnDef>(r.def) })),
      bundles: this.bundleRows(),
    }
  }

  private bundleRows(): StoreSnapshot['bundles'] {
    const owners = new Map<string, string[]>()
    for (const r of this.db.prepare('SELECT hash, owner FROM bundle_owners').all() as { hash: string; owner: string }[]) {
      let o = owners.get(r.hash)
      if (!o) owners.set(r.hash, o = [])
      o.push(r.owner)
    }
    return (this.db.prepare('SELECT hash FROM bundles').all() as { hash: string }[]).map((r) => ({ hash: r.hash, owners: owners.get(r.hash) ?? [] }))
  }

  private queueWrite(write: Write): void { this.queue.push(write) }

  readonly jobs: ControlStore['jobs'] = {
    put: (job: JobRow) => { const b = pack(job); this.queueWrite(() => this.stmt.job.run(job.id, b)) },
    dropDetails: (job, ids) => {
      this.queueWrite(() => {
        this.stmt.jobTasksDel.run(job)
        this.stmt.jobLocationsDel.run(job)
        this.stmt.jobObjectsDel.run(job)
        this.stmt.jobFnsDel.run(job)
        for (const id of ids.actors) this.stmt.actorDel.run(id)
      })
      this.freed = true
    },
    dropRecords: (_job, ids) => {
      this.queueWrite(() => {
        for (const id of ids.tasks) this.stmt.taskDel.run(id)
        for (const id of ids.objects) { this.stmt.objectDel.run(id); this.stmt.locationsDel.run(id) }
      })
      this.freed = true
    },
    remove: (job) => { this.queueWrite(() => this.stmt.jobDel.run(job)) },
  }
  readonly tasks: ControlStore['tasks'] = {
    put: (t) => {
      const spec = pack(t.spec), err = packErr(t.error)
      this.queueWrite(() => this.stmt.task.run(t.id, t.job, spec, t.main ? 1 : 0, t.state, t.attempts, err))
    },
    setState: (id, state, attempts, error) => {
      const err = packErr(error)
      this.queueWrite(() => this.stmt.taskState.run(state, attempts, err, id))
    },
    finish: (id, attempts, result) => {
      const inline = asBuffer(result.inline)
      this.queueWrite(() => this.stmt.taskFinish.run(attempts, inline, result.size, id))
    },
  }
  readonly objects = {
    put: (o: ObjectRow) => {
      const inline = o.inline ? asBuffer(o.inline) : null, err = packErr(o.error)
      const hash = o.hash ?? null
      this.queueWrite(() => this.stmt.object.run(o.id, o.job, o.size, inline, err, hash))
    },
  }
  readonly actors = { put: (a: ActorRow) => { const b = pack(a); this.queueWrite(() => this.stmt.actor.run(a.id, b)) } }
  readonly peers = {
    put: (p: PeerRow) => { const b = pack(p); this.queueWrite(() => this.stmt.peer.run(p.id, b)) },
    remove: (id: string) => { this.queueWrite(() => this.stmt.peerDel.run(id)) },
  }
  readonly origins = {
    put: (o: OriginRow) => { this.queueWrite(() => this.stmt.origin.run(o.origin, o.reputation, o.quarantined ? 1 : 0)) },
    remove: (origin: string) => { this.queueWrite(() => this.stmt.originDel.run(origin)) },
  }
  readonly locations = {
    put: (l: LocationRow) => { this.queueWrite(() => this.stmt.location.run(l.object, l.peer)) },
    remove: (l: LocationRow) => { this.queueWrite(() => this.stmt.locationDel.run(l.object, l.peer)) },
    removeAll: (object: string) => { this.queueWrite(() => this.stmt.locationsDel.run(object)) },
  }
  readonly fns = { put: (job: string, def: FnDef) => { const b = pack(def); this.queueWrite(() => this.stmt.fn.run(job, def.id, b)) } }
  readonly bundles: ControlStore['bundles'] = {
    put: async (hash, code, owner) => {
      this.stmt.bundle.run(hash, Buffer.from(code))
      if (owner) this.stmt.bundleOwner.run(hash, owner)
    },
    get: async (hash) => (this.stmt.bundleGet.get(hash) as { code: Buffer } | undefined)?.code,
    remove: async (hash) => {
      this.stmt.bundleDel.run(hash)
      this.stmt.bundleOwnersDel.run(hash)
      this.freed = true
    },
  }
  readonly states: ControlStore['states'] = {
    put: async (owner, key, value, updatedAt) => { this.stmt.state.run(owner, key, asBuffer(value), updatedAt) },
    get: async (owner, key) => {
      const r = this.stmt.stateGet.get(owner, key) as { value: Buffer; updated_at: number } | undefined
      return r && { value: r.value, updatedAt: r.updated_at }
    },
    remove: async (owner, key) => { this.stmt.stateDel.run(owner, key) },
    list: async (owner, prefix) => {
      const found: StateInfo[] = []
      for (const r of this.stmt.stateKeys.iterate(owner, prefix) as Iterable<{ key: string; size: number; updated_at: number }>) {
        if (!r.key.startsWith(prefix)) break
        found.push({ key: r.key, size: r.size, updatedAt: r.updated_at })
      }
      return found
    },
    expire: async (before) => {
      const n = this.stmt.statesExpire.run(before).changes
      if (n > 0) this.freed = true
      return n
    },
  }
  /** Synchronous underneath: SQLite in WAL mode commits a turn's writes in well under a millisecond. */
  async commit(): Promise<void> { this.commitNow() }
  private commitNow(): void {
    if (this.queue.length === 0) return
    this.commitQueued()
    this.queue = []
    // Pages freed by retention go back to the file system in small steps (~1 MiB each), never one long
    // pause, down to a reserve as large as what is in use (the file is at most twice its live rows):
    // the next jobs' rows take free pages first, so a file that would grow right back is not shrunk
    // first (in the soak, shrinking all the way made the file swing between 9 and 17 MB each round).
    if (this.freed) {
      const free = this.db.pragma('freelist_count', { simple: true }) as number
      const inUse = (this.db.pragma('page_count', { simple: true }) as number) - free
      const excess = free - Math.max(VACUUM_STEP_PAGES, inUse)
      if (excess > 0) this.db.pragma(`incremental_vacuum(${Math.min(VACUUM_STEP_PAGES, excess)})`)
      this.freed = excess > VACUUM_STEP_PAGES
      // The WAL keeps the size of its largest burst; once retention's pages are back, cut it to nothing.
      if (!this.freed) this.db.pragma('wal_checkpoint(TRUNCATE)')
    }
  }
  /** Retention deleted rows whose pages are not yet given back. */
  private freed = false
  /** The bytes the store takes on disk (the database and its WAL). */
  sizeOnDisk(): number {
    let n = 0
    for (const f of [this.path, `${this.path}-wal`]) { try { n += statSync(f).size } catch { /* none */ } }
    return n
  }
  async close(): Promise<void> {
    if (!this.db.open) return
    this.commitNow()
    this.db.close()
  }
}
