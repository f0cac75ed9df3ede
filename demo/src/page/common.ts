/** What the /demo page's modes share: the submit token, one grid connection, the digits, the peer list and number formats. */
import { connect, type Grid, type PeerInfo } from '@colony-grid/client/browser'
import { browserRtc } from '@colony-grid/worker-web/browser'
import { decodeDigits, type Digits } from '../digits-file.js'

export const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
export const pct = (x: number) => `${(x * 100).toFixed(2)}%`
export const plural = (n: number, one: string, many = `${one}s`) => `${fmt(n)} ${n === 1 ? one : many}`

export function showStatus(el: HTMLElement, text: string, error = false): void {
  el.textContent = text
  el.classList.toggle('error', error)
}

export async function fetchBytes(path: string): Promise<Uint8Array> {
  const res = await fetch(path)
  if (!res.ok) throw new Error(`could not load ${path}: HTTP ${res.status}`)
  return new Uint8Array(await res.arrayBuffer())
}

const params = new URLSearchParams(location.hash.slice(1))
const tokenInput = $<HTMLInputElement>('token')
tokenInput.value = params.get('token') ?? localStorage.getItem('colony.submitToken') ?? ''

/** The link's hash parameters (token, join, mode). */
export const hashParam = (name: string) => params.get(name)

export function token(): string { return tokenInput.value.trim() }

/** The token is kept for the next visit once a run uses it. */
export function rememberToken(): string {
  const t = token()
  if (t) localStorage.setItem('colony.submitToken', t)
  return t
}

let grid: Promise<Grid & { jobId: string }> | undefined
/** One connection for the page's runs, whichever mode: the page is one driver, one job. */
export function demoGrid(): Promise<Grid & { jobId: string }> {
  grid ??= connect(location.origin, { token: token(), rtc: browserRtc, onLog: false, name: 'demo page' })
  // A failed connection (a wrong token) is tried afresh on the next run.
  grid.catch(() => { grid = undefined })
  return grid
}

let digits: Promise<Digits> | undefined
export function demoDigits(): Promise<Digits> {
  digits ??= fetchBytes('/demo-files/digits.bin').then(decodeDigits)
  digits.catch(() => { digits = undefined })
  return digits
}

/** The grid's worker peers now, or undefined without a token or when the coordinator does not answer. */
export async function fetchWorkers(): Promise<PeerInfo[] | undefined> {
  const t = token()
  if (!t) return undefined
  const res = await fetch('/api/peers', { headers: { authorization: `Bearer ${t}` } }).catch(() => undefined)
  if (!res?.ok) return undefined
  return (await res.json() as PeerInfo[]).filter((p) => p.role === 'worker')
}

/** While a run is on, the mode cannot change: another mode's run would want the same CPU slots. */
export function setBusy(on: boolean): void {
  for (const id of ['mode-score', 'mode-train', 'mode-serve']) $<HTMLButtonElement>(id).disabled = on
}
