/** The join page: consent first, then this tab becomes a worker of the grid, with live status. */
import { probeBrowser, type BrowserProbe } from './probe.js'
import { joinAsTab, type TabPeer } from './tab.js'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1))
const tokenInput = $<HTMLInputElement>('token')
tokenInput.value = params.get('token') ?? localStorage.getItem('colony.joinToken') ?? ''
const executorsInput = $<HTMLInputElement>('executors')
executorsInput.max = String(Math.max(1, navigator.hardwareConcurrency || 1))
executorsInput.value = params.get('executors') ?? '1'
const pauseHidden = $<HTMLInputElement>('pause-hidden')

let tab: TabPeer | undefined
let probe: BrowserProbe | undefined
let timer: ReturnType<typeof setInterval> | undefined

function bytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB']
  let i = 0
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++ }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`
}

function render(): void {
  if (!tab) return
  const p = tab.peer
  // After a failover the tab is on another coordinator than the one that served this page: say which.
  const on = new URL(p.coordinatorUrl)
  $('s-conn').textContent = on.origin === location.origin ? p.conn.status : `${p.conn.status} (${on.host})`
  $('s-conn').title = p.conn.coordinators.join('\n')
  $('s-peer').textContent = p.peerId || '—'
  $('s-done').textContent = String(p.tasksDone)
  $('s-in').textContent = bytes((p.data?.bytesIn ?? 0) + p.objects.bytesIn)
  $('s-out').textContent = bytes((p.data?.bytesOut ?? 0) + p.objects.bytesOut)
  const names = [...p.running.values()].map((r) => r.spec.name)
  $('s-current').textContent = names.length ? names.slice(0, 4).join(', ') + (names.length > 4 ? ` and ${names.length - 4} more` : '') : 'nothing'
}

async function join(): Promise<void> {
  const token = tokenInput.value.trim()
  $('error').textContent = ''
  if (!token) { $('error').textContent = 'Paste the join token from the link you were given.'; return }
  const button = $<HTMLButtonElement>('join')
  button.disabled = true
  try {
    probe ??= await probeBrowser()
    // `caps` in the link adds labels (a lab's machines, a test's targets) to what the probe found.
    const extra = (params.get('caps') ?? '').split(',').map((c) => c.trim()).filter(Boolean)
    tab = await joinAsTab({
      token, executors: Math.max(1, Number(executorsInput.value) || 1), capabilities: [...probe.capabilities, ...extra], tfjsBackend: probe.tfjsBackend, ortBackend: probe.ortBackend,
    })
    localStorage.setItem('colony.joinToken', token)
    $('consent').hidden = true
    $('status').hidden = false
    $('title').textContent = 'This tab is working for the grid'
    const list = (ms: Record<string, number>) => Object.entries(ms).map(([b, t]) => `${b} ${t.toFixed(1)} ms`).join(', ')
    const timings = list(probe.tfjsMs)
    $('s-backend').textContent = `tfjs ${probe.tfjsBackend} · onnx ${probe.ortBackend}`
    $('s-backend').title = `matmul 256²: ${timings || 'not measured'}${probe.webgpu ? `; WebGPU adapter: ${probe.webgpu.description || probe.webgpu.vendor}${probe.webgpu.isFallbackAdapter ? ' (software)' : ''}` : ''}`
    $('s-timings').textContent = timings ? `Measured (matmul 256²): ${timings}` : ''
    $('s-ort-timings').textContent = Object.keys(probe.ortMs).length ? `Measured (onnx MatMul 64²): ${list(probe.ortMs)}` : ''
    $('s-caps').textContent = probe.capabilities.join(', ')
    timer = setInterval(render, 500)
    render()
    ;(window as unknown as { colonyTab: TabPeer }).colonyTab = tab
  } catch (e) {
    $('error').textContent = `Could not join: ${(e as Error).message}`
  } finally {
    button.disabled = false
  }
}

async function leave(): Promise<void> {
  clearInterval(timer)
  await tab?.leave()
  tab = undefined
  $('status').hidden = true
  $('consent').hidden = false
  $('title').textContent = 'Lend this tab to the grid'
}

/**
 * Over plain HTTP from another machine the page is not a secure context: no WebGPU, no
 * SharedArrayBuffer (so no wasm threads). Say so before Join, and link to the coordinator's
 * HTTPS address when it has one; the tab joins with what works either way.
 */
async function explainInsecure(): Promise<void> {
  if (isSecureContext) return
  $('insecure').hidden = false
  const info = await fetch('/api/public').then((r) => r.json() as Promise<{ url?: string; secure?: boolean }>).catch(() => ({} as { url?: string; secure?: boolean }))
  if (info.secure && info.url) {
    const a = $<HTMLAnchorElement>('secure-url')
    a.href = `${info.url}/join${location.hash}`
    a.textContent = `${info.url}/join`
    $('secure-link').hidden = false
  } else {
    $('no-secure-link').hidden = false
  }
}
void explainInsecure()

$('join').addEventListener('click', () => void join())
$('leave').addEventListener('click', () => void leave())
document.addEventListener('visibilitychange', () => { if (tab && pauseHidden.checked) tab.pause(document.hidden) })
// Closing the tab closes its socket, which tells the coordinator at once; a clean bye where the browser allows.
addEventListener('pagehide', () => { void tab?.leave() })
