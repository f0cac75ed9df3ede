/**
 * The actor pool the libraries share (scoring now, training's workers, serving's replicas): up
 * to `size` actors of one class, one per free CPU slot of the grid. It grows as peers join (a
 * creation that finds no free slot waits for one), replaces an actor whose peer vanished, and
 * tells its library when an actor is ready or gone; what the actors are fed is the library's.
 */
import { CancelledError, PeerDiedError, TimeoutError, type ObjectRef } from '@colony-grid/shared'
import type { ActorHandle, Grid } from '@colony-grid/worker-web'

/** One actor of a pool. `peer` and `backend` are set once it has loaded (`describe`). */
export interface PoolMember<A> { readonly handle: ActorHandle<A>; peer?: string; backend?: string; inFlight: number; dead: boolean }

export interface ActorPoolOptions<A> {
  /** At most this many actors at once. */
  size: number
  /** Makes one actor (its class's `.remote(...)`). */
  create: () => ActorHandle<A>
  /** Asks a new actor to load what it needs and say where it runs. */
  describe: (handle: ActorHandle<A>) => ObjectRef<{ peer: string; backend: string }>
  /** What the actors are, and what they load, for messages ("scoring actor", "the model"). */
  what: string
  loads: string
  /** An actor has loaded and can take work. */
  onReady?: (m: PoolMember<A>) => void
  /** An actor's peer went away (a replacement is on its way, where the budget allows): others take its work. */
  onGone?: (m: PoolMember<A>) => void
  /** The pool cannot go on (an actor failed to load, or peers keep vanishing): every use of it fails with this. */
  onBroken?: (e: Error) => void
}

/**
 * Errors that mean "the actor's peer went away", not "the actor failed": its work runs again elsewhere.
 * By name, not instanceof: inside a trial runner the library's error classes are its own copies.
 */
export function peerVanished(e: unknown): boolean {
  const { name, message } = (e ?? {}) as { name?: string; message?: string }
  return name === 'PeerDiedError' || (name === 'CancelledError' && /actor .* ended/.test(message ?? ''))
}

export class ActorPool<A> {
  private readonly all: PoolMember<A>[] = []
  /** Actors started to replace ones whose peer went away, since `forgiveLosses`. */
  private replacements = 0
  private closed = false
  broken?: Error
  private readonly sizeWaiters = new Set<() => void>()

  constructor(private readonly grid: Grid, private readonly opts: ActorPoolOptions<A>) {
    for (let i = 0; i < Math.max(1, opts.size); i++) this.start()
  }

  /** Actors loaded and live now. */
  get size(): number { return this.all.filter((m) => !m.dead && m.peer).length }
  /** Every actor, live or not (the library skips the dead and those not yet loaded). */
  members(): readonly PoolMember<A>[] { return this.all }
  get isClosed(): boolean { return this.closed }

  /** Resolves once `actors` actors have loaded (say, one per peer before a timed run). */
  async ready(actors: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.size < actors) {
      if (this.broken) throw this.broken
      const left = deadline - Date.now()
      if (left <= 0) throw new TimeoutError(`the pool has ${this.size} of ${actors} ${this.opts.what}s after ${timeoutMs} ms: are there enough free CPU slots?`)
      await new Promise<void>((r) => {
        const waiters = this.sizeWaiters
        const t = setTimeout(done, left)
        function done() { clearTimeout(t); waiters.delete(done); r() }
        waiters.add(done)
      })
    }
  }

  /** A new run starts: losses before it do not count against its replacement budget. */
  forgiveLosses(): void { this.replacements = 0 }

  /** The actor's peer is gone: others pick up its work, and a new actor may take its place (where a slot is free). */
  retire(m: PoolMember<A>): void {
    if (!m.dead) {
      m.dead = true
      this.grid.kill(m.handle)
      if (!this.closed && ++this.replacements <= 4 * this.opts.size) this.start()
      else if (this.all.every((x) => x.dead)) {
        this.break(new PeerDiedError(`every ${this.opts.what}'s peer has gone, ${this.replacements} times over: giving up (are peers crashing while they work?)`))
      }
    }
    this.opts.onGone?.(m)
  }

  /** One more actor (serving's replicas grow with their queue). */
  grow(): void { if (!this.closed) this.start() }

  /** Ends one actor for good, with no replacement (serving's replicas shrink when idle). */
  shrink(m: PoolMember<A>): void {
    if (m.dead) return
    m.dead = true
    this.grid.kill(m.handle)
  }

  /** Ends the actors (their CPU slots free up). */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const m of this.all) if (!m.dead) { m.dead = true; this.grid.kill(m.handle) }
    this.broken ??= new CancelledError(`the ${this.opts.what} pool was closed`)
    this.wake()
  }

  private start(): void {
    const m: PoolMember<A> = { handle: this.opts.create(), inFlight: 0, dead: false }
    this.all.push(m)
    this.grid.get(this.opts.describe(m.handle)).then(({ peer, backend }) => {
      m.peer = peer
      m.backend = backend
      this.wake()
      if (!m.dead) this.opts.onReady?.(m)
    }, (e: unknown) => {
      if (m.dead || this.closed) return
      if (peerVanished(e)) { this.retire(m); return }
      // It does not load: every actor would fail the same way.
      m.dead = true
      this.grid.kill(m.handle)
      this.break(Object.assign(new Error(`a ${this.opts.what} could not load ${this.opts.loads}: ${(e as Error)?.message ?? e}`), { cause: e }))
    })
  }

  private break(e: Error): void {
    this.broken ??= e
    this.opts.onBroken?.(this.broken)
    this.wake()
  }

  private wake(): void { for (const w of [...this.sizeWaiters]) w() }
}
