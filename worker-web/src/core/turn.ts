/** Runs `fn` once at the end of the current event-loop turn, so messages sent in one turn share a frame. */
export const nextTurn: (fn: () => void) => void =
  typeof setImmediate === 'function'
    ? (fn) => { setImmediate(fn) }
    : typeof MessageChannel === 'function'
      ? (() => {
          const ch = new MessageChannel()
          const queue: (() => void)[] = []
          ch.port1.onmessage = () => { const f = queue.shift(); f?.() }
          return (fn: () => void) => { queue.push(fn); ch.port2.postMessage(0) }
        })()
      : (fn) => { setTimeout(fn, 0) }

/** A promise with its resolvers outside, for request/response bookkeeping. */
export interface Deferred<T> { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void }
export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void, reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
