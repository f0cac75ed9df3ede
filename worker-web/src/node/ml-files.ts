/**
 * The files a Node peer's sandboxed executors read for `colony.ml`: the runtimes bundled
 * into one module, and their wasm. Built once per user, machine and version into a temp
 * folder that only this user may write, which executors may read (and nothing else outside
 * their job's folder). Executors may run as another uid (confine.ts), so it is readable by all:
 * it holds only public code.
 * onnxruntime-node is used where it is installed and the peer opts in (`--native-ml`);
 * it is not a dependency (it is ~300 MB).
 * The runtimes themselves (tfjs, its wasm backend, onnxruntime-web) are optional peer dependencies:
 * a peer without them gets a folder whose ml.mjs only says what to install, and advertises no
 * tfjs or ort capability (worker.ts).
 */
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

export interface MlFiles {
  /** Holds ml.mjs and the wasm files of tfjs and onnxruntime-web (without them: an ml.mjs that says what to install). */
  dir: string
  /** The ML runtimes this peer lacks (none: `colony.ml` works). */
  missing: string[]
  /** The folder of onnxruntime-node, where it is installed. */
  ortNodeDir?: string
  /** What executors must read to load it: its folder and onnxruntime-common's. */
  ortNodeReadable: string[]
}

const packageDir = (name: string, from = require) => {
  const main = from.resolve(name)
  let dir = dirname(main)
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir)
  return dir
}
const version = (name: string) => (JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as { version: string }).version

/** What `colony.ml` needs on a Node peer: optional peer dependencies of @colony-grid/worker-web. */
export const ML_RUNTIMES = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'onnxruntime-web'] as const

/** The ML runtimes that cannot be found from here. */
export function missingMlRuntimes(): string[] {
  return ML_RUNTIMES.filter((name) => { try { packageDir(name); return false } catch { return true } })
}

/** The command that installs them, at the versions this package was built with. */
export function mlInstallCommand(missing: readonly string[] = ML_RUNTIMES): string {
  const ranges = (JSON.parse(readFileSync(join(packageDir('@colony-grid/worker-web'), 'package.json'), 'utf8')) as { peerDependencies?: Record<string, string> }).peerDependencies ?? {}
  return `npm install ${missing.map((name) => ranges[name] ? `${name}@${ranges[name]}` : name).join(' ')}`
}

function findOrtNode(): Pick<MlFiles, 'ortNodeDir' | 'ortNodeReadable'> {
  try {
    const dir = packageDir('onnxruntime-node')
    return { ortNodeDir: dir, ortNodeReadable: [dir, packageDir('onnxruntime-common', createRequire(join(dir, 'package.json')))] }
  } catch { return { ortNodeReadable: [] } }
}

async function build(dir: string): Promise<void> {
  const { build } = await import('esbuild')
  await build({
    entryPoints: [join(dirname(fileURLToPath(import.meta.url)), 'ml-entry.js')], outfile: join(dir, 'ml.mjs'),
    bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
    // tfjs's wasm backend reads its .wasm next to __dirname; ESM has none of require/__dirname.
    banner: { js: "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);" },
  })
  const copy = (pkg: string, keep: RegExp) => {
    const from = join(packageDir(pkg), 'dist')
    for (const f of readdirSync(from)) if (keep.test(f)) cpSync(join(from, f), join(dir, f))
  }
  copy('@tensorflow/tfjs-backend-wasm', /\.wasm$/)
  copy('onnxruntime-web', /^ort-wasm-simd-threaded\.(wasm|mjs)$/)
}

/** Without the runtimes: a module that fails, on first use of `colony.ml`, saying what the peer's operator can install. */
function buildWithout(dir: string, missing: string[]): void {
  const why = `colony.ml: this Node peer has no ML runtimes (${missing.join(', ')} not installed). `
    + `Its operator can add them with: ${mlInstallCommand(missing)}. `
    + "A task that needs them can ask for a peer that has them: { capabilities: ['tfjs-wasm'] } or ['ort-wasm']."
  writeFileSync(join(dir, 'ml.mjs'), `throw new Error(${JSON.stringify(why)})\n`)
}

export function hasOrtNode(): boolean { return !!findOrtNode().ortNodeDir }

/**
 * This user's cache folder (0711: others may pass through it to executors' files, not list it):
 * built files that every executor loads must not be writable, or replaceable through a symlink,
 * by anyone else on the machine.
 */
function privateCache(): string {
  const base = join(tmpdir(), `colony-ml-${userInfo().uid}`)
  try { mkdirSync(base, { mode: 0o711 }) } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e }
  const st = lstatSync(base)
  const uid = process.getuid?.()
  if (!st.isDirectory() || st.isSymbolicLink() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    // Someone else made it, or opened it up: build in a fresh folder instead.
    const fresh = mkdtempSync(join(tmpdir(), 'colony-ml-'))
    chmodSync(fresh, 0o711)
    return fresh
  }
  if ((st.mode & 0o777) !== 0o711) chmodSync(base, 0o711) // made 0700 by an older version
  return base
}

const STAMP = '.complete'
let ready: Promise<MlFiles> | undefined

/** The ML folder, built on first use: one per user, machine and version of the runtimes and of Colony. */
export function mlFiles(): Promise<MlFiles> {
  return ready ??= (async () => {
    const cache = privateCache()
    const missing = missingMlRuntimes()
    const runtimes = missing.length
      ? `no-ml${ML_RUNTIMES.map((name, i) => (missing.includes(name) ? i : '')).join('')}` // the message names what is missing
      : `tfjs${version('@tensorflow/tfjs')}-ort${version('onnxruntime-web')}`
    const dir = join(cache, `${runtimes}-colony${version('@colony-grid/worker-web')}`)
    if (!existsSync(join(dir, STAMP))) {
      // Built aside and renamed into place, so peers starting together never see half a folder.
      const part = mkdtempSync(`${dir}.part-`)
      if (missing.length) buildWithout(part, missing)
      else await build(part)
      writeFileSync(join(part, STAMP), '')
      try { renameSync(part, dir) } catch {
        if (existsSync(join(dir, STAMP))) rmSync(part, { recursive: true, force: true }) // another peer won
        else { try { chmodSync(dir, 0o700) } catch { /* none */ } rmSync(dir, { recursive: true, force: true }); renameSync(part, dir) } // a half-deleted leftover
      }
    }
    // Readable by executors of any uid; writable by none, not even this user's (an executor under a
    // user namespace is this user, and trace_events writes into its cwd, which it may set to here).
    if ((lstatSync(dir).mode & 0o777) !== 0o555) chmodSync(dir, 0o555)
    return { dir: realpathSync(dir), missing, ...findOrtNode() }
  })()
}
