/**
 * A Node peer's private folder, and in it one folder per job: the only files an executor of
 * that job may read besides the executor script and the ML runtimes (its `--allow-fs-read`).
 *
 *   <tmp>/colony-peer-XXXX/      0711  this peer's (traversable, not listable)
 *     peer.pid                   0444  whose it is: a later peer removes it if that process is gone
 *     executor.mjs               0444
 *     jobs/                      0711
 *       <job>/                   0550  the executor's cwd; its bundles, 0440
 *
 * A job's folder is not writable by its executor, so nothing job code can reach without the
 * permission model, such as trace_events' log file in the cwd, can write there. A root peer keeps
 * the folders and files its own, readable by the executors' group (so an executor cannot chmod
 * them); another user makes the folder writable only for the moment it writes a bundle,
 * synchronously, with O_EXCL (a link planted in its place is never followed).
 *
 * The peer removes its folder when it closes; one killed with SIGKILL cannot, so each new
 * peer first removes this user's folders of peers that are no longer running.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/
const HASH = /^[0-9a-f]{8,64}$/

export class SandboxDir {
  readonly root: string
  readonly script: string
  private readonly jobs: string

  /** `owner`: the user executors run as, when not this process's (see confine.ts). */
  constructor(private readonly owner?: { uid: number; gid: number }) {
    sweep()
    this.root = mkdtempSync(join(tmpdir(), 'colony-peer-'))
    chmodSync(this.root, 0o711)
    writeFileSync(join(this.root, PID_FILE), `${process.pid} ${pidNamespace()}`, { mode: 0o444 })
    this.jobs = join(this.root, 'jobs')
    mkdirSync(this.jobs, { mode: 0o711 })
    chmodSync(this.jobs, 0o711) // mkdir's mode passes through the umask
    this.script = join(this.root, 'executor.mjs')
  }

  writeScript(code: Uint8Array | string): void {
    writeFileSync(this.script, code, { mode: 0o444 })
    chmodSync(this.script, 0o444) // the mode above passes through the umask
  }

  /** The job's folder, made on first use. */
  jobDir(job: string): string {
    if (!JOB_ID.test(job)) throw new Error(`bad job id ${JSON.stringify(job).slice(0, 80)}`)
    const dir = join(this.jobs, job)
    if (!existsSync(dir)) {
      mkdirSync(dir, { mode: 0o700 })
      this.seal(dir, 0o550)
    }
    return dir
  }

  bundlePath(job: string, hash: string): string {
    if (!HASH.test(hash)) throw new Error(`bad bundle hash ${hash.slice(0, 80)}`)
    return join(this.jobDir(job), `${hash}.mjs`)
  }

  /** Writes a bundle into its job's folder: opened for this write only, all synchronously (no other write interleaves). */
  writeBundle(job: string, hash: string, bytes: Uint8Array): string {
    const file = this.bundlePath(job, hash)
    const dir = this.jobDir(job)
    const open = process.getuid?.() !== 0
    if (open) chmodSync(dir, 0o700)
    try {
      rmSync(`${file}.part`, { force: true })
      writeFileSync(`${file}.part`, bytes, { mode: 0o400, flag: 'wx' })
      this.seal(`${file}.part`, 0o440)
      renameSync(`${file}.part`, file)
    } finally { if (open) chmodSync(dir, 0o550) }
    return file
  }

  /** Readable by the executors (by group where they run as another user); owned by this peer. */
  private seal(path: string, mode: number): void {
    if (this.owner) chownSync(path, process.getuid?.() ?? 0, this.owner.gid)
    chmodSync(path, mode)
  }

  remove(): void { removeFolder(this.root) }
}

const PID_FILE = 'peer.pid'

/** Which PID namespace a pid is of: a folder shared with another (a container's /tmp) is never swept. */
function pidNamespace(): string {
  try { return readlinkSync('/proc/self/ns/pid') } catch { return '-' }
}

/** Removes a peer's folder (job folders are read-only: opened first so their files can go). */
function removeFolder(root: string): void {
  const jobs = join(root, 'jobs')
  try { for (const job of readdirSync(jobs)) chmodSync(join(jobs, job), 0o700) } catch { /* gone already */ }
  rmSync(root, { recursive: true, force: true })
}

/** Removes this user's peer folders whose peer process is gone for sure (no such pid); others' and unmarked ones stay. */
function sweep(): void {
  const uid = process.getuid?.()
  let names: string[]
  try { names = readdirSync(tmpdir()).filter((n) => n.startsWith('colony-peer-')) } catch { return }
  for (const name of names) {
    const root = join(tmpdir(), name)
    try {
      const st = lstatSync(root)
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue
      const [pidText, ns] = readFileSync(join(root, PID_FILE), 'utf8').split(' ')
      const pid = Number(pidText)
      if (!Number.isInteger(pid) || pid <= 0 || ns !== pidNamespace()) continue
      try { process.kill(pid, 0); continue } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue }
      removeFolder(root)
    } catch { /* not a peer's folder, or another peer removes it now */ }
  }
}
