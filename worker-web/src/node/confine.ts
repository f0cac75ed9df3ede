/**
 * How a Node peer confines its executors beyond Node's permission model, which stops neither
 * signals nor the network: on Node 20 a task could `process.kill(process.ppid, 'SIGUSR1')`, open
 * its peer's inspector on 127.0.0.1:9229, and run code as the peer.
 *
 * On Linux each executor starts in PID and network namespaces of its own (it is PID 1 there: it
 * sees and signals no other process; it has only a loopback that is down, so every connect fails)
 * with RLIMIT_DATA as its memory cap. RLIMIT_DATA counts committed writable private memory and not
 * PROT_NONE reservations, so it caps Buffers and wasm memories (which --max-old-space-size does not)
 * without breaking V8's and wasm's large reservations (RLIMIT_AS would).
 * A mount namespace also masks the folders where Unix sockets live (see MASK), where it can.
 * - As root: `unshare --pid --net --mount` then `setpriv` to an unprivileged uid (65534, `nobody`,
 *   unless configured) with no capabilities and no-new-privs.
 * - Otherwise: an unprivileged user namespace, where the kernel allows it, running the executor as
 *   this user without capabilities (not as root of the namespace: that could write where its files
 *   are, e.g. through trace_events, which the permission model does not stop).
 * Either way the chain starts under `setpriv --pdeathsig=SIGKILL`, so an executor ends with its
 * peer however the peer ends (even by SIGKILL, when it cannot end them itself).
 * Which of these works is found once per process by running it (probe): pid 1, no way to
 * connect to a port this process listens on, the IPC channel intact, the expected uid, and
 * the files executors read readable by it.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'

export interface Confinement {
  /** 'uid': namespaces and a separate uid (the peer is root); 'userns': an unprivileged user namespace; 'none': not confined. */
  readonly kind: 'uid' | 'userns' | 'none'
  /** One line for the peer's start. */
  readonly summary: string
  /** Whom executors run as, when not this process's user: the files they read are given to them. */
  readonly owner?: { uid: number; gid: number }
  /** The command that runs `argv` (a node command line) confined, with at most `dataBytes` of writable memory. */
  command(argv: string[], dataBytes: number): { file: string; args: string[] }
}

export interface ProbeOptions {
  /** The uid (and gid) executors run as when the peer runs as root; default 65534. */
  uid?: number
  /** Folders and files executors must read (the ML runtimes): the probe checks that they can. */
  readable?: string[]
}

/** Where confinement is impossible, why, in words for the volunteer. */
export class ConfinementError extends Error {
  override name = 'ConfinementError'
}

/** Runs executors as this process's user, in its namespaces: only when the volunteer asked for it. */
export function unconfined(): Confinement {
  return {
    kind: 'none', summary: 'NOT confined (--unconfined): job code can signal this process and reach the network',
    command: (argv) => ({ file: argv[0], args: argv.slice(1) }),
  }
}

/** util-linux's tools, by absolute path: executors get no PATH, and a path looked up now cannot change under us. */
function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const file = join(dir, name)
    try { accessSync(file, constants.X_OK); return file } catch { /* next */ }
  }
  return undefined
}

/** cgroup v2 with a writable root: `memory.max` could add a cap per executor. Only detected so far; RLIMIT_DATA is the cap. */
export function cgroupV2Writable(): boolean {
  try { accessSync('/sys/fs/cgroup/cgroup.controllers'); accessSync('/sys/fs/cgroup', constants.W_OK); return true } catch { return false }
}

type Tools = { unshare: string; prlimit: string; setpriv?: string; sh?: string }

/**
 * Unix sockets at paths are outside the network namespace, and Node's permission model does not
 * check them: a volunteer's own D-Bus session (`/run/user/UID/bus`, which can start any command as
 * them) or a docker socket would be reachable. A mount namespace puts empty file systems over the
 * folders such sockets live in (`/run`, and `/var/run` where it is not a link to it; `/dev/shm`),
 * with a fresh /proc of the executor's own PID namespace. `/tmp` stays: the peer's folder is there.
 */
const MASK = 'for d in /run /var/run /dev/shm; do [ -d "$d" ] && [ ! -L "$d" ] || continue; mount -t tmpfs -o mode=0755,size=64k colony "$d" || exit 97; done; exec "$@"'

function candidates(tools: Tools, uid: number): Confinement[] {
  const limit = (dataBytes: number, argv: string[]) => [tools.prlimit, `--data=${dataBytes}`, '--core=0', '--', ...argv]
  // unshare dies with the peer (even a peer killed with SIGKILL), and --kill-child: the executor dies
  // with unshare (which the pool kills); --pdeathsig=keep, as changing uid clears that signal.
  const orphanProof = tools.setpriv ? [tools.setpriv, '--pdeathsig=SIGKILL', '--'] : []
  const ns = ['--pid', '--net', '--fork', '--kill-child']
  const masked = tools.sh ? ['--mount', '--mount-proc', ...ns, '--', tools.sh, '-c', MASK, 'sh'] : undefined
  const line = (parts: string[]) => ({ file: parts[0], args: parts.slice(1) })
  if (process.getuid?.() === 0) {
    if (!tools.setpriv) return []
    const setpriv = [tools.setpriv, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs', '--pdeathsig=keep', '--inh-caps=-all', '--bounding-set=-all', '--']
    const asRoot = (nsParts: string[], what: string): Confinement => ({
      kind: 'uid', owner: { uid, gid: uid }, summary: `confined: ${what}, uid ${uid}`,
      command: (argv, dataBytes) => line([...orphanProof, tools.unshare, ...nsParts, ...setpriv, ...limit(dataBytes, argv)]),
    })
    return [
      ...(masked ? [asRoot(masked, 'own PID, network and mount namespaces (no /run)')] : []),
      asRoot([...ns, '--'], 'own PID and network namespaces (Unix sockets under /run reachable)'),
    ]
  }
  const me = process.getuid?.() ?? 0, myGroup = process.getgid?.() ?? 0
  const asMe = ['--user', `--map-user=${me}`, `--map-group=${myGroup}`]
  const userns = (parts: string[], what: string): Confinement => ({
    kind: 'userns', summary: `confined: own user, ${what}`,
    command: (argv, dataBytes) => line([...orphanProof, tools.unshare, ...parts, ...limit(dataBytes, argv)]),
  })
  return [
    // Root of an outer user namespace masks the folders, then a nested one runs the executor as this
    // user without capabilities (root of a namespace could write where its files are, e.g. through
    // trace_events, which the permission model does not stop).
    ...(masked ? [userns(['--user', '--map-root-user', ...masked, tools.unshare, ...asMe, '--'], 'PID, network and mount namespaces (no /run), without capabilities')] : []),
    userns([...asMe, ...ns, '--'], 'PID and network namespaces, without capabilities (Unix sockets under /run reachable)'),
  ]
}

interface ProbeReport { pid: number; uid: number; connected: boolean; unreadable: string[] }

/** Runs `c` once with a tiny script: does it give what it promises? Undefined if so, else why not. */
async function check(c: Confinement, opts: ProbeOptions): Promise<string | undefined> {
  const server = createServer((s) => s.destroy())
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  const code = `
    const fs = require('node:fs'), net = require('node:net')
    const unreadable = ${JSON.stringify(opts.readable ?? [])}.filter((p) => { try { fs.accessSync(p, fs.constants.R_OK); return false } catch { return true } })
    const s = net.connect(${port}, '127.0.0.1')
    const report = (connected) => { s.destroy(); process.send({ pid: process.pid, uid: process.getuid(), connected, unreadable }, () => process.exit(0)) }
    s.once('connect', () => report(true)); s.once('error', () => report(false))`
  // RLIMIT_DATA counts address space V8 reserves up front: Node 24 needs over 512 MiB of it just to start.
  const { file, args } = c.command([process.execPath, '-e', code], 1024 * 1024 * 1024)
  try {
    const report = await new Promise<ProbeReport>((resolve, reject) => {
      const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: {}, detached: true, cwd: '/' })
      let err = ''
      child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-500) })
      const timer = setTimeout(() => { kill(child.pid); reject(new Error('it did not answer within 10 s')) }, 10_000)
      child.once('message', (m) => { clearTimeout(timer); resolve(m as ProbeReport) })
      child.once('error', (e) => { clearTimeout(timer); reject(e) })
      child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`it exited (${signal ?? `code ${code}`}) ${err.trim()}`)) })
    })
    if (report.pid !== 1) return `no PID namespace (pid ${report.pid})`
    if (report.connected) return 'no network namespace (it reached this process\'s port)'
    if (c.owner && report.uid !== c.owner.uid) return `it ran as uid ${report.uid}, not ${c.owner.uid}`
    if (report.unreadable.length) return `uid ${report.uid} cannot read ${report.unreadable.join(', ')}`
    return undefined
  } catch (e) {
    return (e as Error).message
  } finally { server.close() }
}

/** Kills a process started `detached` and everything in its process group. */
export function kill(pid: number | undefined): void {
  if (!pid) return
  try { process.kill(-pid, 'SIGKILL') } catch { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
}

const probes = new Map<string, Promise<Confinement>>()

/**
 * The first confinement that works here, found by running each (once per process and options);
 * rejects with a ConfinementError saying why none does.
 */
export function probeConfinement(opts: ProbeOptions = {}): Promise<Confinement> {
  const key = JSON.stringify([opts.uid, opts.readable])
  let p = probes.get(key)
  if (!p) {
    p = (async () => {
      if (process.platform !== 'linux') throw new ConfinementError(`this is ${process.platform}, not Linux: no PID or network namespaces`)
      const unshare = which('unshare'), prlimit = which('prlimit'), setpriv = which('setpriv')
      if (!unshare || !prlimit) throw new ConfinementError('util-linux\'s unshare and prlimit were not found on PATH')
      const tried = candidates({ unshare, prlimit, setpriv, sh: which('sh') }, opts.uid ?? 65534)
      if (!tried.length) throw new ConfinementError('running as root, but util-linux\'s setpriv was not found on PATH')
      const why: string[] = []
      for (const c of tried) {
        const failed = await check(c, opts)
        if (!failed) return c
        why.push(`${c.summary.replace(/^confined: /, '')}: ${failed}`)
      }
      const hint = process.getuid?.() !== 0 && existsSync('/proc/sys/kernel/unprivileged_userns_clone') ? ' (is kernel.unprivileged_userns_clone 0?)' : ''
      throw new ConfinementError(`namespaces are not available here${hint}: ${why.join('; ')}`)
    })()
    probes.set(key, p)
  }
  return p
}
