/**
 * Which coordinator of a grid serves (hot standby, issue 15). Alone (SQLite or memory) a
 * coordinator leads at once. On Redis it takes part in the leader lease (leader-lease.ts): the
 * holder leads; the others stand by, knowing who leads, and take over when the lease lapses. A
 * leader that loses its lease steps down at once and stands by again. Every coordinator also
 * stamps its URL into the shared list (coordinator-list.ts) that peers fail over along.
 */
import { LeaderLease } from './leader-lease.js'
import { CoordinatorList } from './coordinator-list.js'

export type Role = 'leader' | 'standby' | 'deposed'

export interface LeadershipOptions {
  /** The shared store's Redis; none: this coordinator is alone and leads. */
  redisUrl?: string
  /** This coordinator's public URL: its id in the lease and the list. */
  self: string
  /** Wait while another leads (otherwise starting beside a leader is refused). */
  standby: boolean
  leaseTtlMs: number
  log(line: string): void
  /** Load the tables and serve them; `again`: after a lost lease (open the store afresh). */
  lead(lease: LeaderLease | undefined, again: boolean): Promise<void>
  /** Stop serving at once: the lease is gone. */
  stepDown(): void
}

export class Leadership {
  role: Role = 'standby'
  /** Who leads, as far as this coordinator knows (itself when it does). */
  leaderUrl?: string
  /** Resolves when this coordinator leads; after a lost lease, when it leads again. */
  leading: Promise<void> = Promise.resolve()
  private lease?: LeaderLease
  private list?: CoordinatorList
  /** Aborted by close(): a standby waiting for the lease stops asking for it. */
  private readonly closing = new AbortController()

  constructor(private readonly o: LeadershipOptions) {}

  /** Leads, or stands by. Throws when another coordinator leads and this one is no standby. */
  async start(): Promise<void> {
    const { redisUrl, self, log } = this.o
    if (!redisUrl) {
      this.leading = this.o.lead(undefined, false).then(() => { this.role = 'leader' })
      return this.leading
    }
    this.list = new CoordinatorList(redisUrl, self)
    await this.list.start()
    const lease = this.lease = new LeaderLease(redisUrl, { key: 'colony:leader', id: self, ttlMs: this.o.leaseTtlMs, log })
    const holder = await lease.holder()
    if (holder && holder !== self && !this.o.standby) {
      await this.close()
      throw new Error(`another coordinator (${holder}) leads the store at ${redisUrl}: start this one with --standby to stand by for it`)
    }
    this.leaderUrl = holder ?? undefined
    if (holder) log(`standing by: ${holder} leads; this coordinator takes over when its lease lapses`)
    // A leader that cannot prove it leads stops at once, before another may take over, and stands by again.
    lease.on('lost', () => {
      if (this.role !== 'leader') return
      this.role = 'standby'
      this.leaderUrl = undefined
      log('lost the leader lease (Redis unreachable for a lease\'s life, or another coordinator took it): stopped serving; standing by')
      this.o.stepDown()
      this.standBy(true, true)
    })
    this.standBy(false, !!holder)
    // A standby is up as soon as it stands by; a coordinator that must lead is up once it does.
    if (!this.o.standby) await this.leading
  }

  /** `waited`: another led (or this one lost the lease), so taking it is news for the log. */
  private standBy(again: boolean, waited: boolean): void {
    const lease = this.lease!
    const since = Date.now()
    const watch = setInterval(() => { lease.holder().then((h) => { this.leaderUrl = h ?? undefined }, () => {}) }, 1000)
    watch.unref()
    this.leading = (async () => {
      try { await lease.acquire(this.closing.signal) } finally { clearInterval(watch) }
      this.leaderUrl = this.o.self
      await this.o.lead(lease, again)
      this.role = 'leader'
      if (waited) this.o.log(`took over as leader ${((Date.now() - since) / 1000).toFixed(1)} s after standing by; peers reconnect here`)
    })()
    this.leading.catch((e: Error) => { if (!this.closing.signal.aborted) this.o.log(`could not take over: ${e.stack ?? e}`) })
  }

  /** Every live coordinator's URL, this one first; only this one when alone. */
  urls(): string[] { return this.list?.urls() ?? [this.o.self] }

  /** Lets go of the lease (after the caller committed what it had) and leaves the list. */
  async close(): Promise<void> {
    this.role = 'deposed'
    // A standby still waiting for the lease stops trying: its retries would keep the process alive.
    this.closing.abort(new Error('the coordinator is closing'))
    await this.lease?.close().catch(() => {})
    await this.list?.close()
  }
}
