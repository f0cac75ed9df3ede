/**
 * The deployments a coordinator keeps running (`colony start` makes one host): they outlive the
 * driver that made them, until deleted. The host is a driver of its own grid, connected on first
 * use; each deployment's options (models included) are kept in `dir`, so a restarted coordinator
 * serves them again.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeValue, encodeValue } from '@colony-grid/shared'
import type { Grid } from '@colony-grid/worker-web'
import { Deployment } from './deployment.js'
import { BadInputError, NoDeploymentError } from './errors.js'
import type { ServeOptions } from './types.js'

export interface ServeHostOptions {
  /** The grid the replicas run on: the coordinator's own, as a driver. */
  connect: () => Promise<Grid>
  /** Where deployments are kept across restarts; none: in memory only. */
  dir?: string
  /** How long a new deployment may take to load its first replicas. Default 120 s. */
  readyTimeoutMs?: number
  log?: (line: string) => void
}

export class ServeHost {
  private readonly deployments = new Map<string, Deployment>()
  private grid?: Promise<Grid>
  private closed = false

  constructor(private readonly opts: ServeHostOptions) {}

  /** The deployment of that name, or undefined. */
  find(name: string): Deployment | undefined { return this.deployments.get(name) }

  get(name: string): Deployment {
    const d = this.deployments.get(name)
    if (!d) throw new NoDeploymentError(`no deployment '${name}'${this.deployments.size ? ` (there are ${[...this.deployments.keys()].map((n) => `'${n}'`).join(', ')})` : ''}: colony serve deploy makes one`)
    return d
  }

  list(): Deployment[] { return [...this.deployments.values()] }

  /** Makes (or replaces) a deployment and waits for a replica of each version; a model that does not load is an error here. */
  async deploy(name: string, options: ServeOptions, persist = true): Promise<Deployment> {
    const user = this.list().find((p) => p.opts.pipeline?.includes(name))
    if (user) throw new BadInputError(`'${name}' is a stage of the pipeline '${user.name}': delete that first, then replace it`)
    const grid = await this.connected()
    const d = await Deployment.create(grid, name, options, (stage) => this.get(stage).replicaSet())
    try { await d.ready(this.opts.readyTimeoutMs ?? 120_000) } catch (e) { d.close(); throw e }
    if (this.closed) { d.close(); throw new Error('the coordinator is closing') }
    const old = this.deployments.get(name)
    this.deployments.set(name, d)
    old?.close()
    if (persist && this.opts.dir) {
      await mkdir(this.opts.dir, { recursive: true })
      await writeFile(join(this.opts.dir, `${name}.msgpack`), encodeValue(options))
    }
    this.opts.log?.(`serving '${name}': ${options.pipeline ? `a pipeline through ${options.pipeline.join(', ')}` : d.versions.join(', ')}, inputs [${d.rowShape.join(', ')}]`)
    return d
  }

  async remove(name: string): Promise<void> {
    const d = this.get(name)
    const user = this.list().find((p) => p.opts.pipeline?.includes(name))
    if (user) throw new BadInputError(`'${name}' is a stage of the pipeline '${user.name}': delete that first`)
    d.close()
    this.deployments.delete(name)
    if (this.opts.dir) await rm(join(this.opts.dir, `${name}.msgpack`), { force: true })
  }

  /** Serves again what `dir` keeps (after a restart); one that fails is logged and left for the operator. */
  async restore(): Promise<void> {
    if (!this.opts.dir) return
    const files = await readdir(this.opts.dir).catch(() => [] as string[])
    const read = async (f: string): Promise<{ name: string; options: ServeOptions } | undefined> => {
      const name = f.slice(0, -'.msgpack'.length)
      try { return { name, options: decodeValue<ServeOptions>(await readFile(join(this.opts.dir!, f))) } } catch (e) {
        this.opts.log?.(`could not read deployment '${name}' from ${join(this.opts.dir!, f)}: ${(e as Error).message}; it is left there`)
        return undefined
      }
    }
    const kept = (await Promise.all(files.filter((f) => f.endsWith('.msgpack')).map(read))).filter((k) => k !== undefined)
    const again = async ({ name, options }: (typeof kept)[number]) => {
      try { await this.deploy(name, options, false) } catch (e) { this.opts.log?.(`could not serve '${name}' again: ${(e as Error).message}`) }
    }
    // Pipelines after the deployments they go through.
    await Promise.all(kept.filter((k) => !k.options.pipeline).map(again))
    for (const k of kept.filter((k) => k.options.pipeline)) await again(k)
  }

  async close(): Promise<void> {
    this.closed = true
    for (const d of this.deployments.values()) d.close()
    this.deployments.clear()
    const grid = await this.grid?.catch(() => undefined)
    ;(grid as { close?: () => unknown } | undefined)?.close?.()
  }

  private connected(): Promise<Grid> {
    this.grid ??= this.opts.connect()
    this.grid.catch(() => { this.grid = undefined })
    return this.grid
  }
}
