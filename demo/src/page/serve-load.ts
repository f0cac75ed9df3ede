/** The Serve mode's HTTP calls to the deployment, and its load: loops that POST held-out digits and count the answers. */
import type { DeploymentStats, Prediction } from '@colony-grid/client/browser'
import { DIGIT_PIXELS, HELD_OUT_FROM, type Digits } from '../digits-file.js'
import { token } from './common.js'
import { shifted } from './digit-canvas.js'

export const NAME = 'demo-mnist'
export const ENDPOINT = `/serve/${NAME}`
/** The load's concurrent loops, each with one request in flight. */
const LOOPS = 32
/** After each pass over the held-out digits the load shifts them by a pixel, so the cache (10,000 answers) cannot answer them all. */
const SHIFTS: [number, number][] = [[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]]

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly retryAfterS = 0) { super(message) }
}

const authorization = () => ({ authorization: `Bearer ${token()}` })

/** An HTTP call that answers JSON, or throws the error the endpoint gave ({ error: { code, message } }). */
export async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { ...init, headers: { ...authorization(), ...init.headers } })
  const body = await res.json().catch(() => undefined) as { error?: { code?: string; message?: string } } | undefined
  if (!res.ok) {
    const why = body?.error ? `${body.error.code ?? 'ERROR'}: ${body.error.message}` : res.statusText
    throw new HttpError(res.status, `HTTP ${res.status} ${why}`, Number(res.headers.get('retry-after')) || 0)
  }
  return body as T
}

export const predict = (rows: ArrayLike<number>[]) =>
  call<Prediction>(ENDPOINT, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: rows.map((r) => Array.from(r)) }) })
export const readStats = () => call<DeploymentStats>(ENDPOINT)

export const argmax = (xs: ArrayLike<number>) => { let k = 0; for (let i = 1; i < xs.length; i++) if (xs[i] > xs[k]) k = i; return k }

/** The load: LOOPS loops, each POSTing one held-out digit at a time, counting what each answer was. */
export class Load {
  running = false
  answered = 0
  refused = 0
  failed = 0
  right = 0
  /** Answers by HTTP status ('network' where no answer came). */
  readonly outcomes = new Map<string, number>()
  lastError?: string
  private next = 0
  private done: Promise<void> = Promise.resolve()
  /** Each answered request's time at this page (ms), since the last `drain`. */
  private latencies: number[] = []

  start(d: Digits, onFailure: (message: string) => void): void {
    this.running = true
    const held = d.count - HELD_OUT_FROM
    const loop = async () => {
      while (this.running) {
        const i = this.next++
        const index = HELD_OUT_FROM + (i % held)
        const [dx, dy] = SHIFTS[Math.floor(i / held) % SHIFTS.length]
        const row = shifted(d.pixels.subarray(index * DIGIT_PIXELS, (index + 1) * DIGIT_PIXELS), dx, dy)
        const started = performance.now()
        let outcome = 'network'
        try {
          const p = await predict([row])
          outcome = '200'
          this.answered++
          this.latencies.push(performance.now() - started)
          if (argmax(p.outputs[0]) === d.labels[index]) this.right++
        } catch (e) {
          if (e instanceof HttpError) outcome = String(e.status)
          if (e instanceof HttpError && e.status === 429) {
            // Refused, not failed: the queue is full, and the answer says when to come back.
            this.refused++
            await new Promise((r) => setTimeout(r, Math.min(2000, 1000 * Math.max(0.2, e.retryAfterS))))
          } else {
            this.failed++
            this.lastError = (e as Error)?.message ?? String(e)
            onFailure(this.lastError)
            await new Promise((r) => setTimeout(r, 200))
          }
        } finally {
          this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1)
        }
      }
    }
    this.done = Promise.all(Array.from({ length: LOOPS }, loop)).then(() => {})
  }

  /** Stops asking; resolves once every request in flight has its answer (and is counted). */
  stop(): Promise<void> {
    this.running = false
    return this.done
  }

  /** The answered requests' times at this page since the last call, sorted. */
  drain(): number[] {
    const out = this.latencies.sort((a, b) => a - b)
    this.latencies = []
    return out
  }

  get total(): number { return this.answered + this.refused + this.failed }
}
