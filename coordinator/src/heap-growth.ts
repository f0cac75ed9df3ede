/**
 * How far V8 lets the coordinator's heap grow past what is alive before its next full collection.
 * Left to itself, V8 starts cautious and widens that headroom as it learns the load: in a soak of
 * 10,000-task jobs the coordinator's RSS climbed from 145 to 300 MB over the first ~300,000 tasks
 * and only then levelled off, with nothing alive growing (heap snapshots taken at round 6 and round
 * 38 held 52 and 42 MB). A fixed headroom makes its memory the same from the first hour to the
 * hundredth, and smaller: with 100% (the heap may double between full collections) the same soak
 * sat at 190–230 MB from its fourth round. What it costs is measured by `npm run bench` (README).
 * It is process-wide, so `colony start` and `colony up` set it, not `startCoordinator`, which may
 * share its process with an application of its own.
 */
import { setFlagsFromString } from 'node:v8'

export const DEFAULT_HEAP_GROWTH_PERCENT = 100

/** `COLONY_HEAP_GROWTH_PERCENT`: 10 to 400, or 0 to leave V8 to choose. Returns what was set, or an error to print. */
export function setHeapGrowth(value: string | undefined): { percent: number } | { error: string } {
  const percent = value === undefined || value === '' ? DEFAULT_HEAP_GROWTH_PERCENT : Number(value)
  if (!Number.isInteger(percent) || (percent !== 0 && (percent < 10 || percent > 400))) {
    return { error: `COLONY_HEAP_GROWTH_PERCENT must be a whole number from 10 to 400, or 0 to leave V8 to choose (got ${value})` }
  }
  // V8 reads this flag each time it sizes the heap after a full collection, so setting it now, after
  // start-up, takes effect from the first collection on (checked by the soak's RSS, not assumed).
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`)
  return { percent }
}
