// Nested tasks: each task submits two more until depth 0. `npx colony submit client/examples/tree-sum.ts --args "[6]"`
import { current, type Grid } from '@colony-grid/client'

export async function treeSum(depth: number): Promise<number> {
  if (depth === 0) return 1
  const grid = current()
  const self = grid.remote(treeSum)
  const [a, b] = await grid.get([self.remote(depth - 1), self.remote(depth - 1)])
  return a + b
}

export default async function main(grid: Grid, depth = 6) {
  return grid.get(grid.remote(treeSum).remote(depth))
}
