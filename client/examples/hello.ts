// A first Colony job: `npx colony submit client/examples/hello.ts`.
// Exported functions and classes are the job's remote functions and actors;
// the default export is the job's main, and gets the grid.
import type { Grid } from '@colony-grid/client'

export function square(x: number): number {
  return x * x
}

export class Counter {
  n = 0
  inc(): number { return ++this.n }
}

export default async function main(grid: Grid, upTo = 10) {
  const sq = grid.remote(square)
  const squares = await grid.get(Array.from({ length: upTo }, (_, i) => sq.remote(i + 1)))
  console.log(`squared ${squares.length} numbers on the grid`)
  const counter = grid.remote(Counter).remote()
  await grid.get([counter.inc.remote(), counter.inc.remote()])
  return { sumOfSquares: squares.reduce((a, b) => a + b, 0), counter: await grid.get(counter.inc.remote()) }
}
