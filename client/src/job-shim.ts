/**
 * What `@colony-grid/client` is inside a job bundle on a peer (CLI bundles and the web IDE's):
 * `current()`, the running task's grid, and `ml`, the peer's `colony.ml`. The client itself
 * is not shipped. Source text, for the bundlers' virtual module.
 */
export const TASK_CLIENT_SHIM = `
export function current() {
  const c = globalThis.colony
  if (!c) throw new Error('current() works inside a task')
  return c.grid
}
export const ml = new Proxy({}, { get(_, k) {
  const m = globalThis.colony?.ml
  if (!m) throw new Error('ml works inside a task (it is the peer\\'s colony.ml)')
  const v = m[k]
  return typeof v === 'function' ? v.bind(m) : v
} })
`
