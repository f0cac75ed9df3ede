/** How the dashboard writes numbers and times: as the CLI and the IDE do (../words.ts), and clock times. */

export { ago, count, duration } from '../words.js'

/** A clock time for today's events, the date too for older ones. */
export function when(at: number): string {
  const d = new Date(at)
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString()
}

/** Sets a node's text only when it changed: a refresh of an unchanged table touches no DOM. */
export function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) node.textContent = text
}
