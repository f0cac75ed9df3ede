/**
 * The demo's dataset: the 10,000 MNIST digits shipped in the `mnist` package, in one
 * seeded order. Training uses the first 8,000; the last 2,000 are held out, so the
 * demo can report accuracy on digits the model never saw.
 */
import { createRequire } from 'node:module'

import { DIGIT_PIXELS, DIGITS_SEED, type Digits } from './digits-file.js'
import { seededRandom, shuffle } from './seeded.js'

export { DIGIT_PIXELS, DIGITS_SEED, HELD_OUT_FROM, encodeDigits, decodeDigits, type Digits } from './digits-file.js'
export { seededRandom, shuffle } from './seeded.js'

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
