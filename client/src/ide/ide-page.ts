/**
 * The web IDE at /ide: write a job, bundle it here (esbuild-wasm), and run it. The page is
 * the driver: it joins the grid as a peer with the submit token, uploads the bundle so
 * peers can import its exports, and calls the job's `main(grid)`.
 */
import { TaskError, type ColonyError, type TaskLogMsg } from '@colony-grid/shared'
import * as api from '../api.js'
import { browserRtc } from '@colony-grid/worker-web/browser'
import { BundleError, bundle } from './bundler.js'
import { ClusterPanel } from './cluster.js'
import { CodeEditor } from './editor.js'
import { EXAMPLES } from './examples.js'
import { FileStore } from './files.js'
import { formatValue } from './format.js'
import { BundleMap, mapStack } from './source-map.js'
import { TrialsPanel } from './trials-panel.js'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const params = new URLSearchParams(location.hash.slice(1))
const tokenInput = $<HTMLInputElement>('token')
tokenInput.value = params.get('token') ?? localStorage.getItem('colony.submitToken') ?? ''
tokenInput.addEventListener('change', () => localStorage.setItem('colony.submitToken', tokenInput.value.trim()))

// The job's bundle imports '@colony-grid/client' through this (see bundler.ts).
;(globalThis as { __colonyClient?: unknown }).__colonyClient = api
const API_NAMES = Object.keys(api)

const store = new FileStore()
let file = localStorage.getItem('colony.ide.open') ?? EXAMPLES[0].file
if (!store.has(file)) file = EXAMPLES[0].file
let saveTimer: ReturnType<typeof setTimeout> | undefined
const editor = new CodeEditor($('editor'), () => { void run() }, () => {
  clearTimeout(saveTimer)
  saveTimer = setTimeout(() => store.set(file, editor.text), 300)
})

/**
 * Where the panels' HTTP requests go: this page's coordinator, then the one the last job's driver is on
 * (after a failover, another one: the page's may be gone).
 */
let coordinator = (): string => location.origin
const request = (path: string, init: RequestInit = {}): Promise<Response | undefined> =>
  fetch(new URL(path, coordinator()), { ...init, headers: { authorization: `Bearer ${tokenInput.value.trim()}`, ...(init.headers ?? {}) } }).catch(() => undefined)
const authed = async <T>(path: string, init: RequestInit = {}): Promise<T | undefined> => {
  const res = await request(path, init)
  return res?.ok ? await res.json() as T : undefined
}
const cluster = new ClusterPanel($('cluster'), authed)
const trials = new TrialsPanel($('trials'), request)

// ---------------------------------------------------------------- files

function renderFiles(): void {
  $('examples').replaceChildren(...EXAMPLES.map((ex) => {
    const li = document.createElement('li')
    li.className = ex.file === file ? 'open' : ''
    li.dataset.file = ex.file
    li.innerHTML = `<b></b><span></span>`
    li.querySelector('b')!.textContent = ex.title
    li.querySelector('span')!.textContent = ex.about
    li.addEventListener('click', () => open(ex.file))
    return li
  }))
  const own = store.names().filter((n) => !EXAMPLES.some((e) => e.file === n))
  $('files').replaceChildren(...own.map((name) => {
    const li = document.createElement('li')
    li.className = name === file ? 'open' : ''
    li.dataset.file = name
    li.textContent = name
    li.addEventListener('click', () => open(name))
    return li
  }))
  $('file-name').textContent = file
  $<HTMLButtonElement>('reset-file').hidden = !EXAMPLES.some((e) => e.file === file)
}

function open(name: string): void {
  store.set(file, editor.text)
  file = name
  localStorage.setItem('colony.ide.open', name)
  editor.load(store.get(name) ?? '')
  renderFiles()
}

$('new-file').addEventListener('click', () => {
  const name = prompt('File name', 'my-job.ts')?.trim()
  if (!name) return
  const full = name.endsWith('.ts') ? name : `${name}.ts`
  if (!store.has(full)) store.set(full, `import type { Grid } from '@colony-grid/client'\n\nexport function work(x: number) { return x * 2 }\n\nexport default async function main(grid: Grid) {\n  return grid.get(grid.remote(work).remote(21))\n}\n`)
  open(full)
})
$('reset-file').addEventListener('click', () => { store.reset(file); editor.load(store.get(file) ?? '') })

// ---------------------------------------------------------------- output

const output = $('output')
function say(kind: 'log' | 'main' | 'info' | 'error' | 'result', text: string, line?: number): HTMLElement {
  const row = document.createElement('div')
  row.className = `out ${kind}`
  row.textContent = text
  if (line !== undefined) {
    row.classList.add('jump')
    row.title = `line ${line} of ${file}`
    row.addEventListener('click', () => editor.mark(line))
  }
  output.append(row)
  output.scrollTop = output.scrollHeight
  return row
}

function showError(e: unknown, map: BundleMap | undefined): void {
  const err = e as ColonyError & { remoteStack?: string }
  say('error', `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`)
  const stack = err instanceof TaskError ? err.remoteStack : err?.stack
  if (!stack) return
  // A task's remote stack is shown whole; of a local one (main, or the IDE itself), only the frames in the user's file.
  const remote = err instanceof TaskError
  const lines = mapStack(stack, map, file).filter((l) => l.line !== undefined || (remote && /^at /.test(l.text)))
  for (const l of lines.slice(0, 12)) say('error', `    ${l.text}`, l.line)
  const first = lines.find((l) => l.line !== undefined)
  if (first) editor.mark(first.line!)
}

// ---------------------------------------------------------------- run

let running: { grid?: api.Grid & { jobId: string }; cancel: () => void } | undefined
const runButton = $<HTMLButtonElement>('run'), cancelButton = $<HTMLButtonElement>('cancel')

function setRunning(on: boolean): void {
  runButton.disabled = on
  cancelButton.disabled = !on
  document.body.classList.toggle('running', on)
}

async function progress(jobId: string): Promise<void> {
  const job = await authed<api.JobInfo>(`/api/jobs/${jobId}`)
  if (!job) return
  const c = job.tasks
  const total = Object.values(c).reduce((a, b) => a + b, 0)
  $('progress').textContent = `${job.id} · ${c.finished} of ${total} tasks finished · ${c.running} running · ${c.waiting + c.ready} waiting${c.failed ? ` · ${c.failed} failed` : ''}${c.cancelled ? ` · ${c.cancelled} cancelled` : ''}`
}

async function run(): Promise<void> {
  if (running) return
  const token = tokenInput.value.trim()
  output.replaceChildren()
  editor.mark(null)
  if (!token) { say('error', 'Paste the submit token first (colony start prints it, with a link to this page).'); return }
  localStorage.setItem('colony.submitToken', token)
  store.set(file, editor.text)
  setRunning(true)
  trials.reset()
  // A search main starts (tune) runs in this page: the Trials panel shows it.
  const unwatch = api.tune.watch((s) => trials.follow(s))
  let cancelled = false
  let stopCancelWait: (e: Error) => void = () => {}
  const cancelWait = new Promise<never>((_, reject) => { stopCancelWait = reject })
  cancelWait.catch(() => undefined)
  running = { cancel: () => { cancelled = true; stopCancelWait(new api.CancelledError('cancelled from the IDE')) } }
  const restore = captureConsole()
  let map: BundleMap | undefined
  let ticker: ReturnType<typeof setInterval> | undefined
  try {
    say('info', `Bundling ${file}…`)
    const code = await bundle(file, store.all(), API_NAMES)
    map = BundleMap.fromBundle(code)
    const res = await fetch('/api/bundles', {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ bundle: code }),
    })
    const body = await res.json().catch(() => ({})) as { hash?: string; error?: { message: string } }
    if (!res.ok || !body.hash) throw new Error(`the coordinator refused the bundle (HTTP ${res.status}): ${body.error?.message ?? 'no reason given'}`)
    const url = URL.createObjectURL(new Blob([code], { type: 'text/javascript' }))
    const mod = await import(/* @vite-ignore */ url) as Record<string, unknown>
    URL.revokeObjectURL(url)
    if (typeof mod.default !== 'function') throw new Error(`${file} has no main: add \`export default async function main(grid) { … }\``)
    const grid = await api.connect(location.origin, {
      token, rtc: browserRtc, name: `ide: ${file}`,
      onLog: (m: TaskLogMsg) => { for (const line of m.lines) say('log', `[${m.name} @ ${m.peer}] ${line}`) },
    })
    running.grid = grid
    coordinator = () => grid.coordinatorUrl
    grid.useBundle(body.hash, mod)
    cluster.follow(grid.jobId)
    say('info', `Running ${file} as job ${grid.jobId} (${(code.length / 1024).toFixed(1)} KB bundle)`)
    ticker = setInterval(() => { void progress(grid.jobId); void cluster.refresh() }, 500)
    const started = performance.now()
    const result = await Promise.race([(mod.default as (g: api.Grid) => unknown)(grid), cancelWait])
    say('info', `Finished in ${((performance.now() - started) / 1000).toFixed(2)} s. Result:`)
    say('result', formatValue(result))
  } catch (e) {
    if (e instanceof BundleError) {
      say('error', `Could not bundle: ${e.message}`, e.file === file ? e.line : undefined)
      if (e.file === file && e.line) editor.mark(e.line)
    } else if (cancelled) say('error', 'Cancelled: the job\'s tasks were stopped (a running one ends with its executor).')
    else showError(e, map)
  } finally {
    unwatch()
    restore()
    clearInterval(ticker)
    const grid = running?.grid
    running = undefined
    if (grid) {
      await progress(grid.jobId)
      await grid.close().catch(() => undefined)
      await cluster.refresh()
    }
    setRunning(false)
  }
}

/** `console.log` in main (which runs in this page) goes to the output too. */
function captureConsole(): () => void {
  const saved = { log: console.log, info: console.info, warn: console.warn, error: console.error }
  for (const level of ['log', 'info', 'warn', 'error'] as const) {
    console[level] = (...args: unknown[]) => {
      saved[level](...args)
      say('main', `[main] ${args.map((a) => (typeof a === 'string' ? a : formatValue(a))).join(' ')}`)
    }
  }
  return () => Object.assign(console, saved)
}

runButton.addEventListener('click', () => { void run() })
cancelButton.addEventListener('click', () => {
  const r = running
  if (!r) return
  r.cancel()
  trials.stop()
  const jobId = r.grid?.jobId
  if (jobId) void authed(`/api/jobs/${jobId}`, { method: 'DELETE' })
})

editor.load(store.get(file) ?? '')
renderFiles()
setRunning(false)
void cluster.refresh()
setInterval(() => { if (!running) void cluster.refresh() }, 3000)
