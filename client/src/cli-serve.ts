/**
 * `colony serve`: deployments on the coordinator.
 *   deploy APP.ts     APP's default export is { name, ...options } (or a function that returns it),
 *                     as serve() takes them; models may be bytes read from files
 *   list              each deployment: versions, replicas, queue, latency, cache
 *   delete NAME
 */
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { deploymentBody } from './serving/serve.js'
import type { Command } from 'commander'
import type { DeploymentStats, ServeOptions } from './serving/types.js'
import { api, fail, request, target, type Target } from './cli-target.js'
import { EXIT } from './cli/exit-codes.js'
import { helpAfter, oneShot, subcommand, withTarget } from './cli/program.js'

export function registerServe(program: Command): void {
  const serve = subcommand(program, 'serve', 'deployments on the coordinator: deploy a model app, list them, delete one')
  helpAfter(serve, ['colony serve deploy app.ts', 'colony serve list', 'colony serve delete mnist'])
    .addHelpText('after', '\nAPP.ts\'s default export: { name, models: [{ version, onnx | tfjs }], inputShape, ... } (see the README\'s Serving).')
  helpAfter(withTarget(subcommand(serve, 'deploy', 'compile APP.ts and deploy its default export, { name, ...options }')
    .argument('<app>', 'a .ts or .js file whose default export is the deployment (or a function that returns it)')), ['colony serve deploy app.ts'])
    .action(oneShot(async (file: string, opts: { url?: string; token?: string }) => { await deploy(target(opts), file) }))
  helpAfter(withTarget(subcommand(serve, 'list', 'each deployment: versions, replicas, queue, latency, cache')
    .option('--json', 'print them as JSON')), ['colony serve list'])
    .action(oneShot(async (opts: { url?: string; token?: string; json?: boolean }) => { await listDeployments(target(opts), opts.json) }))
  helpAfter(withTarget(subcommand(serve, 'delete', 'delete a deployment')
    .argument('<name>', 'the deployment\'s name')), ['colony serve delete mnist'])
    .action(oneShot(async (name: string, opts: { url?: string; token?: string }) => {
      await api(target(opts), `/api/deployments/${encodeURIComponent(name)}`, { method: 'DELETE' })
      console.log(`deleted '${name}'`)
    }))
}

/** APP's default export, compiled beside it (so its relative and package imports resolve as they would there). */
async function loadApp(file: string): Promise<ServeOptions & { name: string }> {
  if (!existsSync(file)) fail(`no file ${file}: colony serve deploy takes a .ts or .js file whose default export is the deployment`)
  const out = join(dirname(resolve(file)), `.colony-serve-${process.pid}-${basename(file).replace(/\.[cm]?[jt]s$/, '')}.mjs`)
  try {
    await build({ entryPoints: [file], bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20', outfile: out, logLevel: 'silent' })
      .catch((e: { errors?: { text: string }[] }) => fail(`could not compile ${file}: ${e.errors?.[0]?.text ?? String(e)}`))
    const mod = await import(pathToFileURL(out).href) as { default?: unknown }
    const app = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default
    if (!app || typeof app !== 'object' || typeof (app as { name?: unknown }).name !== 'string') {
      fail(`${file} must export default { name: 'mnist', models: [{ version: 'v1', onnx: bytes }], ... } (the options serve() takes, and a name)`)
    }
    return app as ServeOptions & { name: string }
  } finally {
    await rm(out, { force: true })
  }
}

const ms = (v: number) => `${v.toFixed(1)} ms`

async function deploy(t: Target, file: string): Promise<void> {
  const { name, ...options } = await loadApp(file)
  const res = await request(t, '/api/deployments', { method: 'POST', headers: { 'content-type': 'application/x-msgpack' }, body: await deploymentBody(name, options) as BodyInit })
  const body = await res.json().catch(() => ({})) as { error?: { message: string }; inputShape?: number[]; versions?: string[]; access?: string }
  if (!res.ok) fail(`deploying '${name}': HTTP ${res.status}: ${body.error?.message ?? res.statusText}`, EXIT.failed)
  console.log(`serving '${name}' (${body.versions?.join(', ')}; inputs [N, ${body.inputShape?.join(', ')}]; ${body.access === 'public' ? 'anyone may call it' : 'a submit token calls it'})
  POST ${new URL(`/serve/${encodeURIComponent(name)}`, t.urls[0]).href}   {"inputs": [[...], ...]}`)
}

async function listDeployments(t: Target, json: boolean | undefined): Promise<void> {
  const deployments = await api(t, '/api/deployments') as DeploymentStats[]
  if (json) { console.log(JSON.stringify(deployments, null, 2)); return }
  if (deployments.length === 0) console.log('no deployments (colony serve deploy APP.ts makes one)')
  for (const d of deployments) {
    console.log(`${d.name}  ${d.selection}, objective ${d.sloMs} ms, ${d.access}: ${d.requests} requests, ${d.pending} rows pending, p50 ${ms(d.latency.p50)}, p99 ${ms(d.latency.p99)}, cache ${(d.cache.hitRatio * 100).toFixed(1)}% hits`)
    for (const v of d.versions) {
      const share = d.shares[v.version]
      console.log(`  ${v.version}${share !== undefined ? ` (${(share * 100).toFixed(1)}%)` : ''}: ${v.replicas.length} replica${v.replicas.length === 1 ? '' : 's'}, ${v.queued} queued${v.replicas.map((r) => `\n    ${r.peer} ${r.backend}: ${r.served} rows, batch ${r.batchSize}${r.busy ? ', busy' : ''}`).join('')}`)
    }
  }
}
