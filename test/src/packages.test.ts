/**
 * The packages as people install them: `npm pack` of shared, coordinator, worker-web and client,
 * installed from the tarballs into empty folders outside the repository, then run from there.
 * - A driver's install (client, which brings shared and worker-web) has no coordinator, no SQLite
 *   addon and no ML runtime, and `colony start` there says what to install.
 * - A grid's install (all four, plus the ML runtimes) starts a coordinator and a worker with the
 *   installed CLI (`npx colony`), and the README's first job runs against them.
 * - A worker from the driver's install joins too, with ML off: it says so once, offers no tfjs/ort
 *   capability, runs plain tasks, and `colony.ml` there fails saying what to install.
 *
 * better-sqlite3 compiles from source when no prebuilt binary can be downloaded (about a minute
 * here). Where the repository's own build of the same version exists, the grid's install pins that
 * version and hands the binary to better-sqlite3's installer as a local prebuild
 * (prebuild-install's `local-prebuilds`), so its install script runs as usual, without the compile.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, ROOT } from './harness.js'

const PACKAGES = ['shared', 'coordinator', 'worker-web', 'client'] as const
type Pkg = typeof PACKAGES[number]

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T

/** The environment for npm and the installed CLI: nothing of an enclosing `npm test` (its prefix, workspace, package) and no Colony settings. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_)|^npm_config_(prefix|local_prefix|global_prefix|workspaces?|include_workspace_root|global|argv)$/i.test(k)) continue
    if (k === 'INIT_CWD' || k === 'COLONY_URL' || k === 'COLONY_TOKEN' || k === 'COLONY_SUBMIT_TOKEN' || k === 'COLONY_JOIN_TOKEN') continue
    env[k] = v
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra }
}

/** Runs a command to its end (never longer than `timeoutMs`) and gives its output; rejects on a non-zero exit, with the output. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(new Error(`${cmd} ${args.join(' ')} (in ${opts.cwd}) failed: ${err.message}\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`), { code: err.code, stdout, stderr }))
      else resolve({ stdout, stderr })
    })
  })
}

interface Started {
  child: ChildProcess
  output(): string
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** Its exit code once it ends by itself (null: ended by a signal); rejects past `timeoutMs`. */
  exit(timeoutMs?: number): Promise<number | null>
  stop(): Promise<void>
}

const running = new Set<Started>()

/** A long-running process in a process group of its own (npx and the node it starts), stopped as a group. */
function start(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Started {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer) => { out += d.toString(); for (const l of listeners) l() }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<void>((r) => { if (child.exitCode !== null) r(); else child.once('exit', () => r()) })
  const alive = () => child.exitCode === null && child.signalCode === null
  const signal = (s: NodeJS.Signals) => { try { process.kill(-child.pid!, s) } catch { /* gone */ } }
  const p: Started = {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => { const m = out.match(re); if (m) { done(); resolve(m) } }
        const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd} ${args.join(' ')}:\n${out.slice(-3000)}`)) }, timeoutMs)
        const onExit = () => setImmediate(() => { if (!out.match(re)) { done(); reject(new Error(`${cmd} ${args.join(' ')} exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out.slice(-3000)}`)) } })
        const done = () => { clearTimeout(timer); listeners.delete(check); child.off('exit', onExit) }
        listeners.add(check)
        child.once('exit', onExit)
        check()
      })
    },
    async exit(timeoutMs = 30_000) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([exited, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${out.slice(-3000)}`)), timeoutMs) })])
      clearTimeout(timer)
      running.delete(p)
      return child.exitCode
    },
    async stop() {
      running.delete(p)
      if (alive()) signal('SIGTERM')
      const late = setTimeout(() => signal('SIGKILL'), 10_000)
      await exited
      clearTimeout(late)
      signal('SIGKILL') // anything left in its group
    },
  }
  running.add(p)
  return p
}

/** Bytes under a folder (links not followed), and the packages in a node_modules. */
function du(dir: string): number {
  let total = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += du(p)
    else if (e.isFile()) total += lstatSync(p).size
  }
  return total
}
function installedPackages(nodeModules: string): string[] {
  const names: string[] = []
  const walk = (dir: string, prefix = '') => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue
      if (e.name.startsWith('@') && !prefix) walk(join(dir, e.name), `${e.name}/`)
      else {
        names.push(prefix + e.name)
        if (existsSync(join(dir, e.name, 'node_modules'))) walk(join(dir, e.name, 'node_modules'))
      }
    }
  }
  walk(nodeModules)
  return names
}

/**
 * better-sqlite3 as the repository built it, as a local prebuild for its installer: the version to pin
 * and the environment that points prebuild-install at it. Undefined where there is none to hand over.
 */
async function sqlitePrebuild(dir: string): Promise<{ version: string; env: Record<string, string> } | undefined> {
  const pkgDir = join(ROOT, 'node_modules', 'better-sqlite3')
  const binary = join(pkgDir, 'build', 'Release', 'better_sqlite3.node')
  const glibc = process.platform !== 'linux' || !!(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime
  if (!existsSync(binary) || !glibc) return undefined
  const { version } = readJson<{ version: string }>(join(pkgDir, 'package.json'))
  mkdirSync(dir, { recursive: true })
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`
  try { await run('tar', ['-czf', join(dir, name), '-C', pkgDir, 'build/Release/better_sqlite3.node'], { cwd: dir }) } catch { return undefined }
  return { version, env: { npm_config_better_sqlite3_local_prebuilds: dir } }
}

/** The README's first job: the code block under "A first job". */
function firstJob(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const at = readme.search(/^## A first job/m)
  assert.ok(at >= 0, 'the README has a section "A first job"')
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(at))
  assert.ok(block, 'the README\'s first job has a js code block')
  return block[1]
}

let work: string
const tgz = {} as Record<Pkg, string>
const packed = {} as Record<Pkg, { files: string[]; size: number; unpackedSize: number }>
let driverDir: string
let gridDir: string
let driverInstallMs = 0
let gridInstallMs = 0

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'colony-packages-'))
  const tarballs = join(work, 'tarballs')
  mkdirSync(tarballs)
  // npm pack of the built packages (`npm run build` made dist and dist-web).
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tarballs, ...PACKAGES.flatMap((p) => ['-w', p])], { cwd: ROOT })
  const list = JSON.parse(stdout) as { name: string; filename: string; size: number; unpackedSize: number; files: { path: string }[] }[]
  for (const p of PACKAGES) {
    const entry = list.find((e) => e.name === `@colony-grid/${p}`)
    assert.ok(entry, `npm pack made @colony-grid/${p}`)
    tgz[p] = join(tarballs, entry.filename)
    packed[p] = { files: entry.files.map((f) => f.path), size: entry.size, unpackedSize: entry.unpackedSize }
  }

  // Two empty folders outside the repository, installed at once: a driver's and a grid's.
  driverDir = join(work, 'driver')
  gridDir = join(work, 'grid')
  const prebuild = await sqlitePrebuild(join(work, 'prebuilds'))
  mkdirSync(driverDir)
  mkdirSync(gridDir)
  writeFileSync(join(driverDir, 'package.json'), JSON.stringify({ name: 'colony-driver-install', private: true }))
  writeFileSync(join(gridDir, 'package.json'), JSON.stringify({ name: 'colony-grid-install', private: true, ...(prebuild ? { overrides: { 'better-sqlite3': prebuild.version } } : {}) }))
  const ml = readJson<{ peerDependencies: Record<string, string> }>(join(ROOT, 'worker-web', 'package.json')).peerDependencies
  const flags = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error']
  const env = cleanEnv({ ONNXRUNTIME_NODE_INSTALL: 'skip', ...prebuild?.env })
  const timed = async (f: () => Promise<unknown>) => { const t0 = Date.now(); await f(); return Date.now() - t0 }
  ;[driverInstallMs, gridInstallMs] = await Promise.all([
    timed(() => run('npm', [...flags, tgz.client, tgz.shared, tgz['worker-web']], { cwd: driverDir, env, timeoutMs: 240_000 })),
    timed(() => run('npm', [...flags, ...PACKAGES.map((p) => tgz[p]), ...Object.entries(ml).map(([name, range]) => `${name}@${range}`)], { cwd: gridDir, env, timeoutMs: 240_000 })),
  ])
}, { timeout: 360_000 })

after(async () => {
  await Promise.all([...running].map((p) => p.stop()))
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('the packed packages', () => {
  it('are publishable: a license, files, exports with types, and the built pages inside', (t) => {
    for (const p of PACKAGES) {
      const pkg = readJson<{ private?: boolean; license?: string; files?: string[]; exports: Record<string, unknown>; repository?: unknown; description?: string; publishConfig?: { access?: string } }>(join(ROOT, p, 'package.json'))
      assert.equal(pkg.private, undefined, `${p} is not private`)
      assert.equal(pkg.license, 'Apache-2.0')
      assert.equal(pkg.publishConfig?.access, 'public', `${p} publishes as a public scoped package`)
      assert.ok(pkg.files && pkg.repository && pkg.description, `${p} has files, repository and description`)
      const dot = pkg.exports['.'] as Record<string, unknown>
      assert.ok(dot.types, `${p}'s exports name its types`)
      const files = packed[p].files
      for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']) assert.ok(files.includes(f), `${p} ships ${f}`)
      assert.ok(!files.some((f) => /tsbuildinfo|(^|\/)test\/|\.test\.|node_modules\//.test(f)), `${p} ships no build info, tests or node_modules`)
      t.diagnostic(`${p}: ${(packed[p].size / 1e6).toFixed(1)} MB packed, ${(packed[p].unpackedSize / 1e6).toFixed(1)} MB unpacked, ${files.length} files`)
    }
    assert.ok(packed['worker-web'].files.includes('dist-web/join.html'), 'worker-web ships the join page')
    assert.ok(packed['worker-web'].files.some((f) => f.startsWith('dist-web/ml/')), 'worker-web ships the ML runtimes\' wasm for tabs')
    assert.ok(packed.client.files.includes('dist-web/ide.html'), 'client ships the IDE page')
    assert.ok(packed.client.files.includes('bin/colony.js'), 'client ships its CLI')
    const client = readJson<{ exports: Record<string, Record<string, unknown>> }>(join(ROOT, 'client', 'package.json'))
    assert.ok(client.exports['.'].browser, 'client has a browser entry')
  })
})

describe('a driver\'s install (@colony-grid/client)', () => {
  it('pulls neither the coordinator and its SQLite addon nor the ML runtimes', (t) => {
    const nm = join(driverDir, 'node_modules')
    const names = installedPackages(nm)
    for (const absent of ['@colony-grid/coordinator', 'better-sqlite3', 'onnxruntime-web', 'onnxruntime-node']) assert.ok(!names.includes(absent), `${absent} is not installed`)
    assert.ok(!names.some((n) => n.startsWith('@tensorflow/')), `no @tensorflow package: ${names.filter((n) => n.startsWith('@tensorflow/'))}`)
    for (const present of ['@colony-grid/client', '@colony-grid/worker-web', '@colony-grid/shared']) assert.ok(names.includes(present))
    // The pages are inside the packages, for a coordinator that serves them.
    assert.ok(existsSync(join(nm, '@colony-grid/worker-web/dist-web/join.html')))
    t.diagnostic(`driver install: ${names.length} packages, ${(du(nm) / 1e6).toFixed(0)} MB on disk, ${(driverInstallMs / 1000).toFixed(1)} s; grid install (+ coordinator, ML): ${(gridInstallMs / 1000).toFixed(1)} s`)
  })

  it('gives browser bundlers the browser entry: no CLI, no bundling', async () => {
    // esbuild is a dependency of the client, so the driver's install has it.
    writeFileSync(join(driverDir, 'bundle-for-browser.mjs'), `import { build } from 'esbuild'
const r = await build({ stdin: { contents: "import { connect, Grid } from '@colony-grid/client'; console.log(connect, Grid)", resolveDir: process.cwd() }, bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' })
console.log(JSON.stringify(Object.keys(r.metafile.inputs).filter((f) => f.includes('@colony-grid/client/'))))
`)
    const { stdout } = await run(process.execPath, ['bundle-for-browser.mjs'], { cwd: driverDir, timeoutMs: 60_000 })
    const inputs = JSON.parse(stdout) as string[]
    assert.ok(inputs.some((f) => f.endsWith('dist/api.js')), stdout)
    assert.ok(!inputs.some((f) => /dist\/(index|cli|bundle)\.js$/.test(f)), stdout)
  })

  it('says what to install when asked to start a coordinator', async () => {
    const p = start('npx', ['colony', 'start', '--port', String(await freePort())], driverDir)
    assert.equal(await p.exit(30_000), 2, p.output())
    assert.match(p.output(), /@colony-grid\/coordinator is not installed[\s\S]*npm install @colony-grid\/coordinator@0\.1\.0/)
  })
})

describe('a grid from the installed CLI', () => {
  let url: string
  let coordinator: Started
  let tokens: { submit: string; join: string; trusted: string }

  before(async () => {
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    coordinator = start('npx', ['colony', 'start', '--port', String(port)], gridDir)
    const m = await coordinator.waitFor(/submit token: (\w+)\s+join token:\s+(\w+)\s+trusted join token:\s+(\w+)/, 60_000)
    tokens = { submit: m[1], join: m[2], trusted: m[3] }
  }, { timeout: 90_000 })

  it('runs the README\'s first job', async () => {
    assert.deepEqual(readJson<{ submit: string }>(join(gridDir, '.colony', 'tokens.json')).submit, tokens.submit, 'colony start saved its tokens in ./.colony')
    const worker = start('npx', ['colony', 'worker', '--trusted', '--url', url, '--token', tokens.trusted, '--executors', '1'], gridDir)
    await worker.waitFor(/joined \S+ as p_\w+/, 90_000)
    assert.doesNotMatch(worker.output(), /ML is off/, 'the ML runtimes are installed here')
    assert.doesNotMatch(worker.output(), /not trust/)
    // The pages come from inside the installed packages.
    for (const page of ['/join', '/ide']) {
      const res = await fetch(new URL(page, url))
      assert.equal(res.status, 200, page)
      assert.match(await res.text(), /<html/i, page)
    }
    writeFileSync(join(gridDir, 'first.mjs'), firstJob())
    // The token comes from ./.colony/tokens.json, as the README says.
    const { stdout } = await run(process.execPath, ['first.mjs'], { cwd: gridDir, env: cleanEnv({ COLONY_URL: url }), timeoutMs: 60_000 })
    assert.deepEqual(stdout.trim().split('\n').map((l) => l.trim()), ['14', '[ 1, 2 ]'])
  })

  it('runs colony.ml on a worker that has the runtimes', async () => {
    writeFileSync(join(gridDir, 'ml.mjs'), `import { connect } from '@colony-grid/client'
const grid = await connect()
const sum = grid.remote(async (xs) => { const tf = await colony.ml.tf(); return tf.sum(tf.tensor(xs)).dataSync()[0] }, { capabilities: ['tfjs-wasm'] })
console.log(JSON.stringify(await grid.get(sum.remote([1, 2, 3]))))
await grid.close()
`)
    const { stdout } = await run(process.execPath, ['ml.mjs'], { cwd: gridDir, env: cleanEnv({ COLONY_URL: url }), timeoutMs: 90_000 })
    assert.equal(stdout.trim(), '6')
  })

  it('submits the examples that ship in the client package (bundled, with the client shimmed)', async () => {
    const env = cleanEnv({ COLONY_URL: url })
    const hello = await run('npx', ['colony', 'submit', 'node_modules/@colony-grid/client/examples/hello.ts'], { cwd: gridDir, env, timeoutMs: 90_000 })
    assert.match(hello.stdout, /"sumOfSquares": 385/)
    // tree-sum imports `current` from '@colony-grid/client': the bundle gets the task-side shim, not the client.
    const tree = await run('npx', ['colony', 'submit', 'node_modules/@colony-grid/client/examples/tree-sum.ts', '--args', '[4]'], { cwd: gridDir, env, timeoutMs: 90_000 })
    assert.match(tree.stdout, /^16$/m)
  })

  it('takes a worker from the driver\'s install: ML off, said once, plain tasks run', async () => {
    const worker = start('npx', ['colony', 'worker', '--url', url, '--token', tokens.join, '--executors', '1', '--capabilities', 'from-driver-install'], driverDir)
    const m = await worker.waitFor(/joined \S+ as (p_\w+)/, 90_000)
    assert.equal(worker.output().match(/ML is off/g)?.length, 1, worker.output())
    assert.match(worker.output(), /npm install @tensorflow\/tfjs@\S+ @tensorflow\/tfjs-backend-wasm@\S+ onnxruntime-web@\S+/)
    const peers = await (await fetch(`${url}/api/peers`, { headers: { authorization: `Bearer ${tokens.submit}` } })).json() as { id: string; capabilities: string[] }[]
    const caps = peers.find((p) => p.id === m[1])?.capabilities ?? []
    assert.ok(caps.includes('from-driver-install'), JSON.stringify(peers))
    assert.ok(!caps.some((c) => /^(tfjs|ort)-/.test(c)), `no tfjs or ort capability: ${caps.join(', ')}`)
    // The driver runs from the driver's install too.
    writeFileSync(join(driverDir, 'no-ml.mjs'), `import { connect } from '@colony-grid/client'
const grid = await connect(process.env.COLONY_URL, { token: process.env.COLONY_TOKEN })
const opts = { capabilities: ['from-driver-install'] }
const inc = grid.remote((x) => x + 1, opts)
const ml = grid.remote(async () => { await colony.ml.tf(); return 'loaded' }, opts)
let mlError = ''
try { await grid.get(ml.remote()) } catch (e) { mlError = e.message }
console.log(JSON.stringify({ inc: await grid.get(inc.remote(41)), mlError }))
await grid.close()
`)
    const { stdout } = await run(process.execPath, ['no-ml.mjs'], { cwd: driverDir, env: cleanEnv({ COLONY_URL: url, COLONY_TOKEN: tokens.submit }), timeoutMs: 60_000 })
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as { inc: number; mlError: string }
    assert.equal(out.inc, 42)
    assert.match(out.mlError, /no ML runtimes.*npm install @tensorflow\/tfjs/)
  })
})
