/**
 * The CLI's commands and exit codes (issue 16): each command against a real coordinator and Node worker,
 * the built `colony` binary as a child process, stdout and stderr read apart.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { api, CLI, freePort, ROOT, startGrid, until, type GridProcs } from './harness.js'
import { runCli } from './cli-run.js'

let g: GridProcs
// SQLite (not --memory): the last test restarts the coordinator mid-job, and its jobs must come back.
before(async () => { g = await startGrid({ workers: 1, executors: 2 }) })
after(async () => { await g?.stop() })

const env = () => ({ COLONY_URL: g.url, COLONY_TOKEN: g.submitToken })
const colony = (args: string[], extra: Record<string, string> = {}) => runCli(args, { ...env(), ...extra })
const fixture = (name: string) => join(ROOT, 'test/fixtures', name)
const HELLO = join(ROOT, 'client/examples/hello.ts')
type Job = { id: string; name: string; state: string; result?: unknown; tasks: Record<string, number> }

describe('colony --help and --version', () => {
  it('--version prints the client package\'s version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'client/package.json'), 'utf8')) as { version: string }
    const r = await colony(['--version']).done()
    assert.equal(r.code, 0)
    assert.equal(r.stdout.trim(), version)
  })

  it('each command has its own --help, listing its options, examples and exit codes', async () => {
    const commands: [string[], string[]][] = [
      [['submit'], ['--no-wait', '--json', '--args', '--name', '--quiet', '--timeout', '--url', '--token']],
      [['logs'], ['--follow', '--json', '--timeout']],
      [['stop'], ['--json', '--url']],
      [['list'], ['--state', '--limit', '--json']],
      [['status'], ['--json', '[job]']],
      [['start'], ['--port', '--data', '--memory', '--store', '--standby', '--tls-cert']],
      [['up'], ['--peers', '--port']],
      [['worker'], ['--executors', '--trusted', '--unconfined', '--capabilities']],
      [['token', 'create'], ['--role', '--trusted', '--label']],
      [['serve', 'deploy'], ['<app>']],
    ]
    for (const [cmd, options] of commands) {
      const r = await colony([...cmd, '--help']).done()
      assert.equal(r.code, 0, `colony ${cmd.join(' ')} --help`)
      assert.match(r.stdout, new RegExp(`^Usage: colony ${cmd.join(' ')} `), `colony ${cmd.join(' ')} --help shows its own usage`)
      for (const o of options) assert.ok(r.stdout.includes(o), `colony ${cmd.join(' ')} --help lists ${o}:\n${r.stdout}`)
      assert.match(r.stdout, /Examples:/)
    }
    const submit = await colony(['submit', '--help']).done()
    assert.match(submit.stdout, /Exit codes:[\s\S]*2 +usage[\s\S]*3 +cannot reach the coordinator[\s\S]*4 +the coordinator refused the token[\s\S]*130/)
    const top = await colony(['--help']).done()
    for (const c of ['start', 'up', 'worker', 'submit', 'logs', 'stop', 'list', 'status', 'token', 'serve']) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'))
  })
})

describe('usage errors exit 2', () => {
  it('an unknown command, an unknown option, a missing argument, a bad value, no command at all', async () => {
    const cases: [string[], RegExp][] = [
      [['bogus'], /unknown command 'bogus'[\s\S]*colony --help/],
      [['submit', HELLO, '--bogus'], /unknown option '--bogus'[\s\S]*colony submit --help/],
      [['logs'], /missing required argument 'job'[\s\S]*colony logs --help/],
      [['list', '--limit', 'many'], /--limit[\s\S]*whole number/],
      [['list', '--state', 'sleeping'], /Allowed choices are running, finished, failed, cancelled/],
      [['submit', HELLO, '--args', 'not json'], /--args must be a JSON array/],
      [['submit', fixture('syntax-error.ts')], /could not bundle .*syntax-error\.ts/],
      [[], /Usage: colony/],
    ]
    for (const [args, message] of cases) {
      const r = await colony(args).done()
      assert.equal(r.code, 2, `colony ${args.join(' ')}:\n${r.stderr}`)
      assert.match(r.stderr, message)
      assert.equal(r.stdout, '', 'nothing on stdout')
    }
  })
})

describe('colony submit', () => {
  it('prints the result on stdout and the job\'s log on stderr, apart', async () => {
    const r = await colony(['submit', HELLO]).done()
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), { sumOfSquares: 385, counter: 3 }, 'stdout is the result alone')
    assert.match(r.stderr, /submitted hello .* as job j_\w+/)
    assert.match(r.stderr, /squared 10 numbers on the grid/)
    assert.doesNotMatch(r.stdout, /squared/)
    assert.doesNotMatch(r.stderr, /finished \|/, 'no progress bar when stderr is not a terminal')
  })

  it('takes main\'s arguments after the file, each as JSON', async () => {
    const r = await colony(['submit', join(ROOT, 'client/examples/tree-sum.ts'), '4', '--quiet']).done()
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '16')
    assert.equal(r.stderr, '', '--quiet: no "submitted" line')
  })

  it('--json prints the job as submitted (--no-wait), or its final state', async () => {
    const submitted = await colony(['submit', HELLO, '--json', '--no-wait']).done()
    assert.equal(submitted.code, 0, submitted.stderr)
    assert.match((JSON.parse(submitted.stdout) as Job).id, /^j_\w+$/)

    const r = await colony(['submit', HELLO, '--json']).done()
    assert.equal(r.code, 0, r.stderr)
    const job = JSON.parse(r.stdout) as Job
    assert.equal(job.state, 'finished')
    assert.deepEqual(job.result, { sumOfSquares: 385, counter: 3 })
  })

  it('a failing job exits 1, with the remote error on stderr and nothing on stdout', async () => {
    const r = await colony(['submit', fixture('throws.ts')]).done()
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /job j_\w+ failed: .*wrong on purpose/)
    assert.match(r.stderr, /in task throws:main .* on peer p_\w+/)
    assert.match(r.stderr, /remote stack:[\s\S]*throws\.ts/)
  })

  it('--no-wait prints the id at once; logs, list, status and stop then find the job', async () => {
    const submitted = await colony(['submit', fixture('naps.ts'), '4', '300', '--no-wait']).done()
    assert.equal(submitted.code, 0, submitted.stderr)
    const id = submitted.stdout.trim()
    assert.match(id, /^j_\w+$/, 'stdout is the id alone')

    // logs -f: the log is the output (stdout), until the job ends; then exit 0 for a finished job.
    const followed = await colony(['logs', id, '-f']).done()
    assert.equal(followed.code, 0, followed.stderr)
    assert.deepEqual(followed.stdout.trim().split('\n').map((l) => l.replace(/^.*\] /, '')), [1, 2, 3, 4].map((i) => `nap ${i} of 4 done`))
    assert.match(followed.stderr, new RegExp(`job ${id} finished`))

    const logs = await colony(['logs', id]).done()
    assert.equal(logs.code, 0)
    assert.equal(logs.stdout, followed.stdout, 'the same lines, read page by page')
    const numbered = (await colony(['logs', id, '--json']).done()).stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; line: string })
    assert.deepEqual(numbered.map((l) => l.seq), [1, 2, 3, 4])

    const list = await colony(['list']).done()
    assert.equal(list.code, 0)
    assert.match(list.stdout, /^ID +NAME +STATE +TASKS +STARTED +TIME$/m)
    assert.match(list.stdout, new RegExp(`^${id} +naps +finished +5/5 +`, 'm'))
    const listed = JSON.parse((await colony(['list', '--json', '--state', 'finished']).done()).stdout) as { items: Job[]; total: number }
    assert.ok(listed.items.some((j) => j.id === id))
    assert.ok(listed.items.every((j) => j.state === 'finished'))

    const status = await colony(['status', id]).done()
    assert.equal(status.code, 0)
    assert.match(status.stdout, new RegExp(`job ${id} \\(naps\\): finished, took [\\d.]+ m?s`))
    assert.match(status.stdout, /tasks: 5 of 5 tasks finished/)
    assert.match(status.stdout, /result: \{"napped":4\}/)
    assert.equal((JSON.parse((await colony(['status', id, '--json']).done()).stdout) as Job).state, 'finished')

    const stop = await colony(['stop', id]).done()
    assert.equal(stop.code, 0)
    assert.match(stop.stdout, new RegExp(`job ${id} \\(naps\\) had already ended: finished; nothing to stop`))
  })

  it('colony stop cancels a running job', async () => {
    const id = (await colony(['submit', fixture('naps.ts'), '6', '5000', '--no-wait']).done()).stdout.trim()
    const r = await colony(['stop', id]).done()
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`stopped job ${id} \\(naps\\): cancelled`))
    assert.equal((await api<Job>(g, `/api/jobs/${id}`)).body.state, 'cancelled')
    // Following a cancelled job: its end on stderr, exit 1.
    const followed = await colony(['logs', id, '-f']).done()
    assert.equal(followed.code, 1)
    assert.match(followed.stderr, /was cancelled/)
  })

  it('Ctrl-C cancels the job, then exits 130', async () => {
    const p = colony(['submit', fixture('naps.ts'), '6', '5000'])
    const [, id] = await p.waitFor(/as job (j_\w+)/)
    await until(async () => (await api<Job>(g, `/api/jobs/${id}`)).body.tasks.running > 0, 30_000, 'the job runs')
    p.child.kill('SIGINT')
    const r = await p.done()
    assert.equal(r.code, 130, r.stderr)
    assert.match(r.stderr, new RegExp(`cancelled job ${id}`))
    assert.equal(r.stdout, '')
    assert.equal((await api<Job>(g, `/api/jobs/${id}`)).body.state, 'cancelled')
  })

  it('shows a progress bar on a terminal: tasks finished out of submitted', { skip: !existsSync('/usr/bin/script') && 'needs script(1), from util-linux' }, async () => {
    // `script` runs the CLI on a pseudo-terminal (util-linux); everything it printed comes back on its stdout.
    const cmd = [process.execPath, join(ROOT, 'client/bin/colony.js'), 'submit', fixture('naps.ts'), '8', '600'].join(' ')
    const r = await runCli(['-qfec', cmd, '/dev/null'], env(), ['script', []]).done()
    assert.equal(r.code, 0, r.stdout)
    assert.match(r.stdout, /tasks \[[█░]+\] \d+\/\d+ finished/, 'the bar')
    assert.match(r.stdout, /"napped": 8/)
  })
})

describe('colony status', () => {
  it('says the grid in words, and --json parses', async () => {
    const r = await colony(['status']).done()
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^${g.url.replace(/[./]/g, '\\$&')}: ready$`, 'm'))
    assert.match(r.stdout, /peers: +1 worker, 0 drivers \(1 node\)/)
    assert.match(r.stdout, /tasks: .*\d+ finished/)
    assert.match(r.stdout, /jobs: .*\d+ finished.*\d+ failed/)
    assert.match(r.stdout, new RegExp(`^workers:\\n.*\\n +${g.workerIds[0]} +node \\(trusted\\)`, 'm'))
    const json = JSON.parse((await colony(['status', '--json']).done()).stdout) as { summary: { peers: { total: number }; jobs: Record<string, number> }; peers: { id: string }[]; jobs: Job[] }
    assert.equal(json.summary.peers.total, json.peers.length)
    assert.ok(json.summary.jobs.finished >= 1)
    assert.ok(json.jobs.length >= 1)
  })
})

describe('exit codes of a failed request', () => {
  it('no such job: 1', async () => {
    for (const args of [['status', 'j_nosuch'], ['logs', 'j_nosuch'], ['logs', 'j_nosuch', '-f'], ['stop', 'j_nosuch']]) {
      const r = await colony(args).done()
      assert.equal(r.code, 1, `colony ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /no job j_nosuch/)
    }
  })

  it('no coordinator there: 3, naming the URL and what to check', async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    for (const args of [['status'], ['list'], ['submit', HELLO], ['logs', 'j_x', '-f']]) {
      const r = await colony(args, { COLONY_URL: url }).done()
      assert.equal(r.code, 3, `colony ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, new RegExp(`cannot reach the coordinator at ${url}: connection refused \\(ECONNREFUSED\\)\\. Is it running`))
    }
  })

  it('a refused token: 4, saying which token to use', async () => {
    const r = await colony(['list'], { COLONY_TOKEN: 'not-a-token' }).done()
    assert.equal(r.code, 4)
    assert.match(r.stderr, /refused the token from \$COLONY_TOKEN \(HTTP 401: .*\)\. Use a submit token/)
    const join = await colony(['submit', HELLO, '--token', g.joinToken]).done()
    assert.equal(join.code, 4, 'a join token cannot submit')
    assert.match(join.stderr, /refused the token from --token/)
  })
})

describe('following through a coordinator restart', () => {
  it('reconnects and reports the job\'s real end, never a failure because the stream dropped', async () => {
    // The naps end in batches (those that run at once), 1.5 s apart: killed at the end of a batch, no line is on
    // its way to the coordinator that dies (a line in flight then is lost: logs are not durable messages).
    const p = colony(['submit', fixture('naps.ts'), '8', '1500'])
    await p.waitFor(/nap 4 of 8 done/, { timeoutMs: 60_000 })
    await g.coordinator.kill('SIGKILL')
    await p.waitFor(/reconnecting/)
    await g.startCoordinator()
    const r = await p.done(120_000)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), { napped: 8 })
    assert.match(r.stderr, /lost job j_\w+'s event stream .*; reconnecting in/)
    assert.doesNotMatch(r.stderr, /failed/)
    // The restarted coordinator numbers the job's new lines from 1 again, in a term of its own (the event ids
    // say which): its lines 1 to 4 are naps 5 to 8, new to the follow that had line 4 of the old term, and none twice.
    for (let i = 1; i <= 8; i++) {
      assert.equal(r.stderr.split('\n').filter((l) => l.endsWith(`nap ${i} of 8 done`)).length, 1, `"nap ${i} of 8 done" once:\n${r.stderr}`)
    }
  })
})

describe('following a stream that goes silent', () => {
  it('gives it up after the idle time, and resumes after the last line it printed (Last-Event-ID); a line of another term is new', async () => {
    // A stand-in for a proxy that keeps the connection open but passes nothing on: the first stream sends
    // one line and then nothing, not even keep-alives; the second answers as a restarted coordinator
    // would, its lines numbered from 1 again in a new term, so its line 1 is not the line 1 printed.
    const resumedAfter: (string | undefined)[] = []
    const held: ServerResponse[] = []
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      resumedAfter.push(req.headers['last-event-id'] as string | undefined)
      if (resumedAfter.length === 1) { res.write('event: log\nid: 1@t1\ndata: "one"\n\n'); held.push(res); return }
      res.end('event: log\nid: 1@t2\ndata: "two"\n\n: keep-alive\n\nevent: state\ndata: {"id":"j_quiet","name":"q","state":"finished","createdAt":0,"tasks":{}}\n\n')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const r = await runCli(['logs', 'j_quiet', '-f'], { COLONY_URL: url, COLONY_TOKEN: 't', COLONY_STREAM_IDLE_MS: '1000' }).done()
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, 'one\ntwo\n', 'each line once')
      assert.match(r.stderr, /lost job j_quiet's event stream \(nothing arrived for 1 s\); reconnecting in 250 ms/)
      assert.deepEqual(resumedAfter, [undefined, '1@t1'], 'the last id it got, sent back as it came')
    } finally {
      for (const res of held) res.destroy()
      server.close()
    }
  })
})

/** A stand-in coordinator on a free port, answering every request with `answer`; closed after `body`. */
async function withServer(answer: Parameters<typeof createServer>[1], body: (url: string) => Promise<void>): Promise<void> {
  const server = createServer(answer)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try { await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`) } finally {
    server.closeAllConnections()
    server.close()
  }
}

describe('following a server that answers but not with events', () => {
  it('an error that persists (500) exits 1 with its message, not 3 after minutes of retrying', async () => {
    let asked = 0
    await withServer((_req, res) => {
      asked++
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"code":"INTERNAL","message":"the store is on fire"}}')
    }, async (url) => {
      const r = await runCli(['logs', 'j_x', '-f'], { COLONY_URL: url, COLONY_TOKEN: 't' }).done(20_000)
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /colony: GET \/api\/jobs\/j_x\/events: HTTP 500: the store is on fire/)
      assert.equal(asked, 3, 'asked three times, then gave up')
    })
  })

  it('a page that is not an event stream (a captive proxy\'s 200) exits 1, saying what came', async () => {
    await withServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Sign in to the hotel Wi-Fi</body></html>') }, async (url) => {
      const r = await runCli(['logs', 'j_x', '-f'], { COLONY_URL: url, COLONY_TOKEN: 't' }).done(20_000)
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /HTTP 200 with text\/html, not an event stream .*Sign in to the hotel Wi-Fi/)
    })
  })
})

describe('output into a pipe', () => {
  it('every line reaches a reader slower than the command: it exits once stdout has passed them all on', async () => {
    // 20,000 lines of a job's log (about 1.4 MB, far past what a pipe holds), in pages of the size the CLI asks for.
    const LINES = 20_000
    await withServer((req, res) => {
      const q = new URL(req.url!, 'http://x').searchParams
      const from = Number(q.get('cursor') ?? 0)
      const items = Array.from({ length: Math.min(Number(q.get('limit') ?? 1000), LINES - from) }, (_, i) => ({ seq: from + i + 1, line: `[main t_1 @ p_1] line ${from + i + 1} of a long log` }))
      const next = from + items.length
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items, total: LINES, truncated: next < LINES, ...(next < LINES ? { next: String(next) } : {}) }))
    }, async (url) => {
      const child = spawn(process.execPath, [CLI, 'logs', 'j_big', '--json'], { cwd: ROOT, env: { ...process.env, COLONY_URL: url, COLONY_TOKEN: 't' }, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      // A slow reader: after each chunk it takes, it waits a little before it takes the next.
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); child.stdout.pause(); setTimeout(() => child.stdout.resume(), 20) })
      child.stderr.on('data', (d: Buffer) => { err += d.toString() })
      let timer: ReturnType<typeof setTimeout> | undefined
      const code = await Promise.race([
        new Promise<number | null>((r) => child.once('close', (c) => r(c))),
        new Promise<never>((_, reject) => { timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`still running after 30 s; stderr: ${err}`)) }, 30_000) }),
      ]).finally(() => clearTimeout(timer))
      assert.equal(code, 0, err)
      const lines = out.split('\n')
      assert.equal(lines.pop(), '', 'the output ends with a whole line')
      assert.equal(lines.length, LINES, `every line came (${lines.length} of ${LINES})`)
      lines.forEach((l, i) => assert.equal((JSON.parse(l) as { seq: number }).seq, i + 1))
    })
  })
})

describe('colony start\'s output', () => {
  it('with JSON logs off a terminal, stdout is JSON lines alone: the banner (tokens and links) goes to stderr', async () => {
    const p = runCli(['start', '--port', '0', '--memory'], { COLONY_LOG_FORMAT: 'json', COLONY_LOG_LEVEL: 'info' })
    try {
      const m = await p.waitFor(/Colony coordinator on (http:\/\/\S+)[\s\S]*?submit token: (\w+)/, { stream: 'stderr' })
      assert.equal((await fetch(new URL('/api/peers', m[1]), { headers: { authorization: `Bearer ${m[2]}` } })).status, 200)
      await p.waitFor(/"msg":"GET \/api\/peers 200/, { stream: 'stdout' })
    } finally { p.child.kill('SIGTERM') }
    const r = await p.done()
    const lines = r.stdout.split('\n').filter(Boolean)
    assert.ok(lines.length >= 1)
    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `a stdout line that is not JSON: ${l}`)
    assert.doesNotMatch(r.stdout, /submit token|Colony coordinator on/)
  })

  it('a COLONY_LOG_LEVEL or COLONY_LOG_FORMAT it does not know is a usage error (2) that says what is allowed', async () => {
    const level = await runCli(['start', '--port', '0', '--memory'], { COLONY_LOG_LEVEL: 'loud' }).done()
    assert.equal(level.code, 2, level.stderr)
    assert.match(level.stderr, /^colony: COLONY_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent \(got loud\)$/m)
    assert.doesNotMatch(level.stderr, /\n\s+at /, 'no stack')
    const format = await runCli(['start', '--port', '0', '--memory'], { COLONY_LOG_FORMAT: 'xml' }).done()
    assert.equal(format.code, 2, format.stderr)
    assert.match(format.stderr, /^colony: COLONY_LOG_FORMAT must be json or pretty \(got xml\)$/m)
    assert.equal(level.stdout + format.stdout, '')
  })
})
