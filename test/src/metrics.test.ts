/**
 * Operating a coordinator: /metrics in the Prometheus text format (read with a Prometheus text
 * parser), /readyz through a restart, and the logs (JSON lines off a terminal, pretty on request,
 * an access log line per request).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { CoordinatorMetrics, MemoryStore, startCoordinator, type Ingress, type MetricFamily, type StoreSnapshot } from '@colony-grid/coordinator'
import type { PeerKind } from '@colony-grid/shared'
import { freePort, startGrid, startProc, until, withGrid } from './harness.js'
import { startRedisServer } from './redis-server.js'

type Family = { name: string; help: string; type: string; metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }[] }
const familiesOf = (text: string) => new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]))
/** A CoordinatorMetrics of no control plane (a standby's), with these ingresses. */
const standalone = (ingress: Ingress[] = []) => new CoordinatorMetrics({ control: () => undefined, helloTimeouts: () => 0, ingress })
const fakeIngress = (metrics: () => MetricFamily[]): Ingress => ({ prefixes: [], fetch: async () => new Response(null, { status: 404 }), metrics })

/** One sample line's value, by its full name and labels in the order the coordinator writes them (the parser merges a labelled histogram's series). */
function sample(text: string, nameAndLabels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${nameAndLabels} `))
  return line === undefined ? NaN : Number(line.slice(nameAndLabels.length + 1))
}

describe('/metrics', () => {
  it('parses as Prometheus text, with HELP and TYPE on every family, labels, the three histograms and the process\'s metrics', async () => {
    await withGrid({ workers: 2, executors: 1, memory: true }, async (g, grid) => {
      const N = 30
      const double = grid.remote((x: number) => x * 2)
      assert.equal((await grid.get(Array.from({ length: N }, (_, i) => double.remote(i)))).length, N)
      const failing = grid.remote(() => { throw new Error('on purpose') })
      await assert.rejects(grid.get(failing.remote()))

      const res = await fetch(new URL('/metrics', g.url))
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
      const text = await res.text()
      const families = parsePrometheusTextFormat(text) // throws on a line that is not Prometheus text
      const byName = new Map(families.map((f) => [f.name, f]))
      for (const f of families) {
        assert.ok(f.help.length > 0, `${f.name} has a HELP line`)
        assert.notEqual(f.type, 'UNTYPED', `${f.name} has a TYPE line`)
      }

      // The histograms, in seconds, buckets from 1 ms to 10 min.
      for (const name of ['colony_task_run_seconds', 'colony_task_queue_wait_seconds', 'colony_scheduling_latency_seconds']) {
        assert.equal(byName.get(name)?.type, 'HISTOGRAM', `${name} is a histogram`)
      }
      for (const name of ['colony_task_queue_wait_seconds', 'colony_scheduling_latency_seconds']) {
        const [h] = byName.get(name)!.metrics as { buckets: Record<string, string>; count: string; sum: string }[]
        assert.ok(Number(h.count) >= N + 1, `${name}: ${h.count} observations for ${N + 1} tasks run`)
        assert.ok(Number(h.sum) >= 0)
        const bounds = Object.keys(h.buckets).map((le) => (le === '+Inf' ? Infinity : Number(le))).sort((a, b) => a - b)
        assert.deepEqual([bounds[0], bounds.at(-2), bounds.at(-1)], [0.001, 600, Infinity])
        assert.equal(Number(h.buckets['+Inf']), Number(h.count))
        // Cumulative: no bucket holds more than the next.
        const counts = bounds.map((b) => Number(h.buckets[b === Infinity ? '+Inf' : String(b)]))
        assert.ok(counts.every((c, i) => i === 0 || c >= counts[i - 1]), `${name}'s buckets are cumulative`)
      }
      const finishedRuns = sample(text, 'colony_task_run_seconds_count{outcome="finished",peer_kind="node"}')
      assert.ok(finishedRuns >= N, `colony_task_run_seconds counts ${finishedRuns} finished attempts for ${N} tasks`)
      assert.equal(sample(text, 'colony_task_run_seconds_bucket{le="+Inf",outcome="finished",peer_kind="node"}'), finishedRuns)
      assert.ok(sample(text, 'colony_task_run_seconds_count{outcome="failed",peer_kind="node"}') >= 1, 'the failing task\'s attempts')

      // Labels: peers by kind and role, a running job's tasks by job and state.
      assert.equal(sample(text, 'colony_peers{kind="node",role="worker"}'), 2)
      assert.equal(sample(text, 'colony_peers{kind="node",role="driver"}'), 1)
      assert.equal(sample(text, `colony_job_tasks{job="${grid.jobId}",state="finished"}`), N)
      assert.equal(sample(text, `colony_job_tasks{job="${grid.jobId}",state="failed"}`), 1)
      // The counters kept their names.
      assert.equal(byName.get('colony_tasks_finished_total')?.type, 'COUNTER')
      assert.equal(sample(text, 'colony_tasks_finished_total'), N)
      assert.equal(sample(text, 'colony_leader'), 1)
      assert.equal(sample(text, 'colony_reconciling'), 0)
      // The process's own, under their standard names.
      for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
        assert.ok(byName.has(name), `${name} is there`)
      }
    })
  })
})

describe('/metrics with a metrics token', () => {
  it('needs that token or the operator\'s when one is set (metricsToken or COLONY_METRICS_TOKEN), and none when unset', async () => {
    const quiet = { port: 0, store: 'memory' as const, log: () => {} }
    const open = await startCoordinator(quiet)
    const byOption = await startCoordinator({ ...quiet, metricsToken: 'metrics-secret-one' })
    const before = process.env.COLONY_METRICS_TOKEN
    process.env.COLONY_METRICS_TOKEN = 'metrics-secret-two'
    const byEnv = await startCoordinator(quiet).finally(() => {
      if (before === undefined) delete process.env.COLONY_METRICS_TOKEN; else process.env.COLONY_METRICS_TOKEN = before
    })
    try {
      const scrape = async (c: { localUrl: string }, token?: string) => {
        const r = await fetch(new URL('/metrics', c.localUrl), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
        return { status: r.status, text: await r.text() }
      }
      // Unset: as before, anyone may scrape, whatever they send.
      assert.equal((await scrape(open)).status, 200)
      assert.equal((await scrape(open, 'anything')).status, 200)

      const refused = await scrape(byOption)
      assert.equal(refused.status, 401)
      const body = JSON.parse(refused.text) as { error: { code: string; message: string } }
      assert.equal(body.error.code, 'AUTH')
      assert.match(body.error.message, /metrics token \(COLONY_METRICS_TOKEN\) or the operator's token/)
      assert.doesNotMatch(refused.text, /colony_leader/, 'nothing of the metrics')
      const user = await fetch(new URL('/api/tokens', byOption.localUrl), {
        method: 'POST', headers: { authorization: `Bearer ${byOption.tokens.submit}`, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'submit', label: 'a user' }),
      }).then((r) => r.json() as Promise<{ token: string }>)
      for (const wrong of ['metrics-secret-on', 'metrics-secret-one2', 'metrics-secret-two', user.token, byOption.tokens.join, '']) {
        assert.equal((await scrape(byOption, wrong)).status, 401, `token ${wrong.slice(0, 10)}… is refused`)
      }
      for (const right of ['metrics-secret-one', byOption.tokens.submit]) {
        const r = await scrape(byOption, right)
        assert.equal(r.status, 200)
        assert.equal(familiesOf(r.text).get('colony_leader')?.metrics[0].value, '1')
      }

      assert.equal((await scrape(byEnv)).status, 401)
      assert.equal((await scrape(byEnv, 'metrics-secret-one')).status, 401)
      assert.equal((await scrape(byEnv, 'metrics-secret-two')).status, 200)
      assert.equal((await scrape(byEnv, byEnv.tokens.submit)).status, 200)
    } finally {
      await Promise.all([open.close(), byOption.close(), byEnv.close()])
    }
  })
})

describe('CoordinatorMetrics', () => {
  it('sets up the process\'s metrics once per process, and writes each family once beside a coordinator\'s', async () => {
    const [a, b] = [standalone(), standalone()]
    for (const m of [a, b]) {
      const own = m.registry.getMetricsAsArray().map((x) => (x as unknown as { name: string }).name)
      assert.ok(own.length > 0 && own.every((n) => n.startsWith('colony_')), `a coordinator's registry holds its own families only: ${own.join(', ')}`)
      const text = await m.text()
      for (const name of ['process_cpu_user_seconds_total', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds', 'colony_leader']) {
        assert.equal(text.split('\n').filter((l) => l === `# TYPE ${name} ${name === 'nodejs_gc_duration_seconds' ? 'histogram' : name.endsWith('_total') ? 'counter' : 'gauge'}`).length, 1, `one TYPE line for ${name}`)
      }
      const names = (parsePrometheusTextFormat(text) as Family[]).map((f) => f.name)
      assert.equal(new Set(names).size, names.length, 'no family twice')
    }
  })

  it('timings of any value never throw: what is not a finite number is dropped, a negative one counts as 0', async () => {
    const m = standalone()
    const alien = 'toaster' as PeerKind
    assert.doesNotThrow(() => {
      m.turnBegan(performance.now())
      m.placed(NaN)
      m.placed(Infinity)
      m.ended(NaN, 'finished', 'node')
      m.ended(-Infinity, 'failed', 'browser')
      m.ended(Date.now(), 'lost', alien)
      m.ended(Date.now(), 'gone' as 'lost', 'node')
    })
    const empty = await m.text()
    let f = familiesOf(empty)
    for (const name of ['colony_task_queue_wait_seconds', 'colony_scheduling_latency_seconds']) assert.equal(f.get(name)!.metrics[0].count, '0', name)
    // Every outcome and peer kind is there from the start, at 0 (read from the lines: the parser merges a labelled histogram's series).
    const runCounts = empty.split('\n').filter((l) => l.startsWith('colony_task_run_seconds_count{'))
    assert.equal(runCounts.length, 6)
    assert.ok(runCounts.every((l) => l.endsWith(' 0')), runCounts.join('\n'))

    m.turnBegan(performance.now())
    m.placed(performance.now() + 60_000) // ready "in the future": a clock that stepped back
    m.placed(performance.now() - 300) // ready 0.3 s ago
    m.ended(Date.now() - 1500, 'finished', 'node')
    m.ended(Date.now() + 5000, 'failed', 'browser')
    const text = await m.text()
    f = familiesOf(text)
    const [wait] = f.get('colony_task_queue_wait_seconds')!.metrics
    assert.equal(wait.count, '2')
    assert.deepEqual([wait.buckets!['0.001'], wait.buckets!['0.25'], wait.buckets!['0.5'], wait.buckets!['+Inf']], ['1', '1', '2', '2'])
    assert.ok(Number(wait.sum) >= 0.3 && Number(wait.sum) < 1, wait.sum)
    assert.equal(sample(text, 'colony_task_run_seconds_count{outcome="finished",peer_kind="node"}'), 1)
    assert.equal(sample(text, 'colony_task_run_seconds_bucket{le="1",outcome="finished",peer_kind="node"}'), 0)
    assert.equal(sample(text, 'colony_task_run_seconds_bucket{le="2.5",outcome="finished",peer_kind="node"}'), 1)
    assert.equal(sample(text, 'colony_task_run_seconds_bucket{le="0.001",outcome="failed",peer_kind="browser"}'), 1)
    assert.equal(sample(text, 'colony_task_run_seconds_sum{outcome="failed",peer_kind="browser"}'), 0)
    assert.equal(sample(text, 'colony_task_run_seconds_count{outcome="lost",peer_kind="node"}'), 0)
  })

  it('merges ingresses\' families of one name, sample by sample, and leaves out what would clash', async () => {
    let second = true
    const one = fakeIngress(() => [
      { name: 'x_requests_total', help: 'Requests.', type: 'counter', samples: [{ labels: { d: 'a' }, value: 3 }, { labels: { d: 'b' }, value: 1 }] },
      { name: 'x_seconds', help: 'Latency.', type: 'histogram', buckets: [0.1, 1], series: [{ labels: { d: 'a' }, counts: [1, 2, 3], sum: 5 }] },
      { name: 'colony_leader', help: 'Not ours to give.', type: 'gauge', samples: [{ labels: {}, value: 7 }] },
      { name: 'process_cpu_user_seconds_total', help: 'Nor this.', type: 'counter', samples: [{ labels: {}, value: 7 }] },
    ])
    const two = fakeIngress(() => second ? [
      { name: 'x_requests_total', help: 'Requests.', type: 'counter', samples: [{ labels: { d: 'a' }, value: 2 }, { labels: { d: 'c' }, value: 4 }] },
      // Another bound (0.5): its bucket goes onto the next of the first's (1).
      { name: 'x_seconds', help: 'Latency.', type: 'histogram', buckets: [0.1, 0.5], series: [{ labels: { d: 'a' }, counts: [1, 1, 1], sum: 2 }, { labels: { d: 'b' }, counts: [0, 1, 0], sum: 0.3 }] },
      { name: 'x_requests_total', help: 'Of another type.', type: 'gauge', samples: [{ labels: { d: 'a' }, value: 100 }] },
    ] : [])
    const m = standalone([one, two])
    let text = await m.text()
    const f = familiesOf(text) // parses: no family twice
    assert.equal(f.get('colony_leader')!.metrics[0].value, '0', 'the coordinator\'s own colony_leader, not the ingress\'s')
    assert.equal(text.split('\n').filter((l) => l.startsWith('process_cpu_user_seconds_total ')).length, 1)
    assert.equal(f.get('x_requests_total')!.type, 'COUNTER')
    assert.deepEqual([sample(text, 'x_requests_total{d="a"}'), sample(text, 'x_requests_total{d="b"}'), sample(text, 'x_requests_total{d="c"}')], [5, 1, 4])
    assert.deepEqual(
      ['0.1', '1', '+Inf'].map((le) => sample(text, `x_seconds_bucket{d="a",le="${le}"}`)).concat(sample(text, 'x_seconds_count{d="a"}'), sample(text, 'x_seconds_sum{d="a"}')),
      [2, 5, 9, 9, 7],
    )
    assert.deepEqual(['0.1', '1', '+Inf'].map((le) => sample(text, `x_seconds_bucket{d="b",le="${le}"}`)), [0, 1, 1])
    // The second stops giving them: the next scrape has the first's alone.
    second = false
    text = await m.text()
    assert.deepEqual([sample(text, 'x_requests_total{d="a"}'), sample(text, 'x_requests_total{d="c"}')], [3, NaN])
    assert.equal(sample(text, 'x_seconds_count{d="a"}'), 6)
    assert.ok(Number.isNaN(sample(text, 'x_seconds_count{d="b"}')))
  })
})

describe('/readyz', () => {
  it('says 503 while a restarted coordinator waits for the peers it knew, with how many are back, then 200', async () => {
    // A window long enough to watch; the killed worker never comes back, so it lasts all of it.
    const g = await startGrid({ workers: 2, env: { COLONY_RECONCILE_MS: '8000' } })
    try {
      const ready = async () => { const r = await fetch(new URL('/readyz', g.url)); return { status: r.status, body: await r.json() as { ready: boolean; why?: string } } }
      assert.deepEqual(await ready(), { status: 200, body: { ready: true } })
      await g.coordinator.kill('SIGKILL')
      await g.workers[1].kill('SIGKILL')
      await g.startCoordinator()
      const first = await ready()
      assert.equal(first.status, 503)
      assert.equal(first.body.ready, false)
      assert.match(first.body.why ?? '', /^waiting for peers to reconnect \([01] of 2 back\), until \d{4}-\d\d-\d\dT/)
      // The live worker reconnects; the window stays open for the one that was killed.
      const back = await until(async () => { const r = await ready(); return r.status === 503 && /\(1 of 2 back\)/.test(r.body.why ?? '') && r }, 8000, '/readyz to count the live worker back')
      assert.equal(back.body.ready, false)
      assert.equal(await until(async () => (await ready()).status === 200 && 200, 15_000, '/readyz to say 200 when the window ends'), 200)
      assert.deepEqual((await ready()).body, { ready: true })
    } finally { await g.stop() }
  })

  it('says it is starting while a coordinator loads its state, then ready', async () => {
    let open!: () => void
    const gate = new Promise<void>((r) => { open = r })
    class SlowStore extends MemoryStore {
      override async load(): Promise<StoreSnapshot> { await gate; return super.load() }
    }
    const port = await freePort()
    const starting = startCoordinator({ port, store: new SlowStore(), log: () => {} })
    let c: Awaited<typeof starting> | undefined
    try {
      const url = `http://127.0.0.1:${port}`
      const first = await until(async () => {
        const r = await fetch(new URL('/readyz', url)).catch(() => undefined)
        return r && { status: r.status, body: await r.json() as { ready: boolean; why?: string } }
      }, 10_000, 'the server to answer /readyz')
      assert.deepEqual(first, { status: 503, body: { ready: false, why: 'starting: this coordinator is loading the grid\'s state, to lead' } })
      open()
      c = await starting
      assert.deepEqual(c.readiness(), { ready: true })
      assert.equal((await fetch(new URL('/readyz', url))).status, 200)
    } finally {
      open()
      await (c ?? await starting).close()
    }
  })
})

describe('a standby coordinator', () => {
  it('says 503 on /readyz, naming the leader, and serves the process\'s metrics with colony_leader 0', async () => {
    const redis = await startRedisServer()
    const quiet = { port: 0, store: redis.url as `redis://${string}`, log: () => {}, leaseTtlMs: 1000 }
    const lead = await startCoordinator(quiet)
    const standby = await startCoordinator({ ...quiet, standby: true })
    try {
      assert.equal(standby.role, 'standby')
      const r = await fetch(new URL('/readyz', standby.localUrl))
      assert.equal(r.status, 503)
      assert.deepEqual(await r.json(), { ready: false, why: `standby, the leader is ${lead.url}` })
      assert.deepEqual(standby.readiness(), { ready: false, why: `standby, the leader is ${lead.url}` })
      assert.equal((await fetch(new URL('/readyz', lead.localUrl))).status, 200)
      const m = await fetch(new URL('/metrics', standby.localUrl))
      assert.equal(m.status, 200)
      const byName = new Map(parsePrometheusTextFormat(await m.text()).map((f) => [f.name, f]))
      assert.deepEqual(byName.get('colony_leader')?.metrics, [{ value: '0' }])
      assert.ok(byName.has('process_resident_memory_bytes'))
      assert.equal(byName.get('colony_peers')?.metrics.length, 0, 'a standby has no peers')
      // The leader goes: the standby takes over, and is ready.
      await lead.close()
      await standby.leading
      assert.deepEqual(await (await fetch(new URL('/readyz', standby.localUrl))).json(), { ready: true })
    } finally {
      // (A standby closed while it waits for the lease keeps a timer: close it as the leader.)
      await lead.close()
      await standby.close()
      await redis.dispose()
    }
  })
})

describe('logs', () => {
  it('are JSON lines off a terminal, warnings at warn, and an access line per request without its query or token', async () => {
    // A short reconciliation window makes the coordinator warn at start.
    const p = startProc(['start', '--port', '0', '--memory'], { env: { COLONY_RECONCILE_MS: '100', COLONY_LOG_FORMAT: '', NODE_ENV: '' } })
    try {
      const m = await p.waitFor(/Colony coordinator on (http:\/\/\S+)[\s\S]*?submit token: (\w+)/)
      const [url, token] = [m[1], m[2]]
      assert.equal((await fetch(new URL('/api/peers?cursor=c_123&limit=5', url), { headers: { authorization: `Bearer ${token}` } })).status, 200)
      await p.waitFor(/"msg":"GET \/api\/peers 200/)
      // A token in the query string is no token (401), and is not logged either: the path goes without its query.
      assert.equal((await fetch(new URL(`/api/peers?token=${token}&cursor=c_456`, url))).status, 401)
      await p.waitFor(/"msg":"GET \/api\/peers 401/)
      const json = p.output().split('\n').filter((l) => l.startsWith('{'))
      const lines = json.map((l) => JSON.parse(l) as { level: number; msg: string; time: number; component?: string; http?: Record<string, unknown> })
      assert.ok(lines.length >= 2)
      for (const l of lines) assert.ok(typeof l.level === 'number' && typeof l.msg === 'string' && typeof l.time === 'number', JSON.stringify(l))
      const warning = lines.find((l) => l.msg.startsWith('warning: a reconciliation window'))
      assert.equal(warning?.level, 40, 'the warning is at warn')
      assert.equal(warning?.component, 'coordinator')
      const access = lines.find((l) => l.http?.path === '/api/peers')!
      assert.equal(access.level, 30)
      assert.deepEqual({ ...access.http, ms: 0, remote: '' }, { method: 'GET', path: '/api/peers', status: 200, ms: 0, remote: '' })
      assert.match(String(access.http!.remote), /127\.0\.0\.1/)
      const all = json.join('\n')
      assert.doesNotMatch(all, new RegExp(token), 'no token in the log')
      assert.doesNotMatch(all, /c_123|c_456|token=|authorization/i, 'no query string or Authorization header in the log')
      assert.ok(lines.some((l) => l.http?.path === '/api/peers' && l.http.status === 401), 'the request with the token in its query was logged')
      // Probes go at debug: not at the default level.
      await fetch(new URL('/healthz', url))
      await fetch(new URL('/api/public', url))
      await p.waitFor(/"msg":"GET \/api\/public 200/)
      assert.doesNotMatch(p.output(), /GET \/healthz/)
    } finally { await p.kill('SIGTERM') }
  })

  it('are pretty with COLONY_LOG_FORMAT=pretty', async () => {
    const p = startProc(['start', '--port', '0', '--memory'], { env: { COLONY_RECONCILE_MS: '100', COLONY_LOG_FORMAT: 'pretty' } })
    try {
      const m = await p.waitFor(/Colony coordinator on (http:\/\/\S+)/)
      await fetch(new URL('/api/public', m[1]))
      await p.waitFor(/INFO.*: GET \/api\/public 200 [\d.]+ ms/)
      assert.match(p.output(), /WARN.*: warning: a reconciliation window/)
      assert.doesNotMatch(p.output(), /^\{"level"/m, 'no JSON lines')
    } finally { await p.kill('SIGTERM') }
  })
})
