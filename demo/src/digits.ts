/**
 * The demo's dataset: the 10,000 MNIST digits shipped in the `mnist` package, in one
 * seeded order. Training uses the first 8,000; the last 2,000 are held out, so the
 * demo can report accuracy on digits the model never saw.
 */
import { createRequire } from 'node:module'

import { DIGIT_PIXELS, type Digits } from './digits-file.js'

export { DIGIT_PIXELS, HELD_OUT_FROM, encodeDigits, decodeDigits, type Digits } from './digits-file.js'
export const DIGITS_SEED = 20261121

/** mulberry32: a small seeded PRNG, so the order is the same on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]]
  }
  return items
}

interface MnistDigitSet { length: number; get(i: number): number[] }

/** Every digit of the `mnist` package (its own `set()` shuffles with Math.random, so it is not used). */
export function loadDigits(): Digits {
  const mnist = createRequire(import.meta.url)('mnist') as Record<number, MnistDigitSet>
  const all: { x: number[]; y: number }[] = []
  for (let d = 0; d < 10; d++) for (let i = 0; i < mnist[d].length; i++) all.push({ x: mnist[d].get(i), y: d })
  shuffle(all, seededRandom(DIGITS_SEED))
  const pixels = new Uint8Array(all.length * DIGIT_PIXELS)
  const labels = new Uint8Array(all.length)
  all.forEach((r, i) => {
    labels[i] = r.y
    // The package stores k/255 rounded to 3 decimals; this recovers k exactly.
    for (let p = 0; p < DIGIT_PIXELS; p++) pixels[i * DIGIT_PIXELS + p] = Math.round(r.x[p] * 255)
  })
  return { count: all.length, pixels, labels }
}
