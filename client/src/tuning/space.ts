/**
 * Search spaces: the distributions a config is sampled from, and the seeded sampling that makes a
 * search repeatable. Trial i's config depends only on the seed and i, so a resumed search samples
 * the same configs without keeping a random generator's state.
 */
import { rng } from '../random.js'
import type { Domain, SearchSpace, TrialConfig } from './types.js'

export const uniform = (low: number, high: number): Domain => range('uniform', low, high)
/** Uniform, rounded to a multiple of q. */
export const quniform = (low: number, high: number, q: number): Domain => {
  if (!(q > 0)) throw new RangeError(`quniform: q must be over 0 (got ${q})`)
  return { ...range('uniform', low, high), q } as Domain
}
export const loguniform = (low: number, high: number): Domain => {
  if (!(low > 0)) throw new RangeError(`loguniform: low must be over 0 (got ${low})`)
  return range('loguniform', low, high)
}
/** A whole number in [low, high). */
export const randint = (low: number, high: number): Domain => {
  if (!Number.isInteger(low) || !Number.isInteger(high)) throw new RangeError(`randint takes whole numbers (got ${low}, ${high})`)
  return range('randint', low, high)
}
export const choice = (values: readonly unknown[]): Domain => {
  if (!Array.isArray(values) || values.length === 0) throw new RangeError('choice needs at least one value')
  return { kind: 'choice', values }
}
/** Every value, each in its own trials (a grid's points multiply; `numSamples` repeats the grid). */
export const gridSearch = (values: readonly unknown[]): Domain => {
  if (!Array.isArray(values) || values.length === 0) throw new RangeError('gridSearch needs at least one value')
  return { kind: 'grid', values }
}

function range(kind: 'uniform' | 'loguniform' | 'randint', low: number, high: number): Domain {
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(low < high)) throw new RangeError(`${kind}(${low}, ${high}): low and high must be finite, low below high`)
  return { kind, low, high }
}

const KINDS = new Set(['uniform', 'loguniform', 'randint', 'choice', 'grid'])
export function isDomain(v: unknown): v is Domain {
  return typeof v === 'object' && v !== null && KINDS.has((v as { kind?: string }).kind ?? '')
}

/** A seed for item `i` of stream `seed` (splitmix-style mixing, so neighbouring indexes do not correlate). */
export function seedOf(seed: number, i: number, stream = 0): number {
  let z = (Math.imul(seed | 0, 0x9E3779B1) + Math.imul(i + 1, 0x85EBCA77) + Math.imul(stream + 1, 0xC2B2AE3D)) >>> 0
  z = Math.imul(z ^ (z >>> 16), 0x7FEB352D) >>> 0
  z = Math.imul(z ^ (z >>> 15), 0x846CA68B) >>> 0
  return (z ^ (z >>> 16)) >>> 0
}

export function sampleDomain(d: Domain, r: () => number): unknown {
  switch (d.kind) {
    case 'uniform': {
      const v = d.low + r() * (d.high - d.low)
      return d.q ? Math.min(d.high, Math.max(d.low, Math.round(v / d.q) * d.q)) : v
    }
    case 'loguniform': return Math.exp(Math.log(d.low) + r() * (Math.log(d.high) - Math.log(d.low)))
    case 'randint': return d.low + Math.floor(r() * (d.high - d.low))
    case 'choice': case 'grid': return d.values[Math.floor(r() * d.values.length)]
  }
}

/** Checks a space; returns its grid axes (names with `gridSearch`) and the number of grid points. */
export function checkSpace(space: SearchSpace): { gridKeys: string[]; points: number } {
  if (typeof space !== 'object' || space === null || Array.isArray(space)) throw new TypeError('space must be an object of parameter names to domains (uniform, loguniform, choice, ...)')
  const keys = Object.keys(space)
  if (keys.length === 0) throw new RangeError('space is empty: give at least one parameter, e.g. { lr: loguniform(1e-4, 1e-1) }')
  const gridKeys = keys.filter((k) => isDomain(space[k]) && (space[k] as Domain).kind === 'grid')
  const points = gridKeys.reduce((n, k) => n * (space[k] as Extract<Domain, { kind: 'grid' }>).values.length, 1)
  return { gridKeys, points }
}

/** Trial `index`'s config: its grid point (index modulo the grid) and, for the rest, draws seeded by (seed, index). */
export function configAt(space: SearchSpace, seed: number, index: number): TrialConfig {
  const { gridKeys } = checkSpace(space)
  const r = rng(seedOf(seed, index))
  const config: TrialConfig = {}
  let rest = index
  for (const k of gridKeys) {
    const values = (space[k] as Extract<Domain, { kind: 'grid' }>).values
    config[k] = values[rest % values.length]
    rest = Math.floor(rest / values.length)
  }
  for (const [k, v] of Object.entries(space)) {
    if (gridKeys.includes(k)) continue
    config[k] = isDomain(v) ? sampleDomain(v, r) : v
  }
  return config
}
