/**
 * Separate machines on one box, for tests and benchmarks: network namespaces joined as the
 * internet joins homes. A "public" network (a bridge, 198.18.0.0/24) holds the coordinator,
 * coturn and a reverse proxy; each "home" network (198.19.N.0/24) sits behind a router
 * namespace that masquerades it, so its machines reach the public one and nothing reaches
 * them. `symmetric` NAT (a fresh port per destination, as carrier-grade NAT does) defeats hole
 * punching, so peers in two homes can only meet through TURN. Needs root (CAP_NET_ADMIN).
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Machine {
  /** Its network namespace (`ip netns`). */
  ns: string
  /** Its address: on the public network, or its home's private one. */
  address: string
}

export interface Topology {
  public: Machine
  homes: Machine[]
  /** Starts `cmd` on `m` (in its namespace). */
  spawn(m: Machine, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess
  /** Runs `cmd` on `m` to the end; its stdout. */
  exec(m: Machine, cmd: string, args: string[]): Promise<string>
  close(): Promise<void>
}

const ip = async (...args: string[]) => { await run('ip', args) }

export async function buildTopology(opts: { homes?: number; symmetric?: boolean; prefix?: string } = {}): Promise<Topology> {
  if (process.getuid?.() !== 0) throw new Error('the multi-machine network needs root (network namespaces): run the tests as root, as .ci/run does')
  const prefix = opts.prefix ?? `colony${process.pid}`
  const made: string[] = []
  const add = async (name: string) => {
    const ns = `${prefix}-${name}`
    await run('ip', ['netns', 'delete', ns]).catch(() => {})
    await ip('netns', 'add', ns)
    made.push(ns)
    await ip('-n', ns, 'link', 'set', 'lo', 'up')
    return ns
  }
  const topo: Topology = {
    public: { ns: '', address: '198.18.0.1' },
    homes: [],
    spawn: (m, cmd, args, o = {}) => spawn('ip', ['netns', 'exec', m.ns, cmd, ...args], o),
    exec: async (m, cmd, args) => (await run('ip', ['netns', 'exec', m.ns, cmd, ...args])).stdout,
    async close() {
      for (const ns of made.reverse()) await run('ip', ['netns', 'delete', ns]).catch(() => {})
    },
  }
  try {
    const pub = topo.public.ns = await add('public')
    await ip('-n', pub, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', pub, 'addr', 'add', '198.18.0.1/24', 'dev', 'br0')
    await ip('-n', pub, 'link', 'set', 'br0', 'up')
    // The rest of the internet: packets to addresses nobody here has (a peer's private host
    // candidate) leave and are lost, as they would be. Without a default route, sending to them
    // fails at once (ENETUNREACH), and coturn closes the whole allocation that tried.
    await ip('-n', pub, 'route', 'add', 'default', 'dev', 'br0')
    for (let i = 1; i <= (opts.homes ?? 2); i++) {
      const router = await add(`router${i}`)
      const home = await add(`home${i}`)
      // The router's public side is a port of the public bridge; its home side is the home's gateway.
      await ip('-n', router, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', pub)
      await ip('-n', pub, 'link', 'set', `port${i}`, 'master', 'br0', 'up')
      await ip('-n', router, 'addr', 'add', `198.18.0.${10 + i}/24`, 'dev', 'wan0')
      await ip('-n', router, 'link', 'set', 'wan0', 'up')
      await ip('-n', router, 'route', 'add', 'default', 'dev', 'wan0')
      await ip('-n', router, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', home)
      await ip('-n', router, 'addr', 'add', `198.19.${i}.1/24`, 'dev', 'lan0')
      await ip('-n', router, 'link', 'set', 'lan0', 'up')
      await ip('-n', home, 'addr', 'add', `198.19.${i}.2/24`, 'dev', 'eth0')
      await ip('-n', home, 'link', 'set', 'eth0', 'up')
      await ip('-n', home, 'route', 'add', 'default', 'via', `198.19.${i}.1`)
      await run('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      await run('ip', ['netns', 'exec', router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan0', '-j', 'MASQUERADE', ...(opts.symmetric ? ['--random-fully'] : [])])
      topo.homes.push({ ns: home, address: `198.19.${i}.2` })
    }
    return topo
  } catch (e) {
    await topo.close()
    const err = e as Error & { stderr?: string }
    throw new Error(`could not build the test network (${err.stderr?.trim() || err.message}): it needs root, ip and iptables (apt-get install -y iproute2 iptables)`)
  }
}
