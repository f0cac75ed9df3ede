/** A confusion matrix as a heat-mapped table: right answers in blue, mistakes in red. */
export function renderConfusion(table: HTMLElement, confusion: number[][]): void {
  const max = Math.max(...confusion.flat())
  const head = document.createElement('tr')
  head.append(document.createElement('th'), ...confusion.map((_, k) => Object.assign(document.createElement('th'), { textContent: String(k) })))
  table.replaceChildren(head, ...confusion.map((row, t) => {
    const tr = document.createElement('tr')
    tr.append(Object.assign(document.createElement('th'), { textContent: String(t) }))
    for (const [p, n] of row.entries()) {
      const td = document.createElement('td')
      td.textContent = n ? String(n) : ''
      // Square-rooted, so the few mistakes stay visible beside the diagonal's hundreds.
      const strength = n === 0 ? 0 : 0.12 + 0.88 * Math.sqrt(n / max)
      td.style.background = p === t ? `rgba(47, 111, 222, ${strength})` : `rgba(217, 48, 37, ${Math.min(1, strength * 3)})`
      td.style.color = strength > 0.55 ? '#fff' : '#1d2430'
      tr.append(td)
    }
    return tr
  }))
}
