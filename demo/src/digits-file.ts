/** The demo's digits as one file (what the demo page fetches), readable in Node and browsers. */
export const DIGIT_PIXELS = 784
/** Digits from this index on were held out of training. */
export const HELD_OUT_FROM = 8000
/** The seed of the digits' order, and of everything trained from them. */
export const DIGITS_SEED = 20261121

export interface Digits {
  count: number
  /** count × 784 grey levels, 0..255, row-major 28×28. */
  pixels: Uint8Array
  labels: Uint8Array
}

/** A u32 count, the labels, then the pixels. */
export function encodeDigits(d: Digits): Uint8Array {
  const out = new Uint8Array(4 + d.count + d.pixels.length)
  new DataView(out.buffer).setUint32(0, d.count, true)
  out.set(d.labels, 4)
  out.set(d.pixels, 4 + d.count)
  return out
}

export function decodeDigits(bytes: Uint8Array): Digits {
  if (bytes.length < 4) throw new RangeError('not a digits file: too short')
  const count = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true)
  if (bytes.length !== 4 + count * (1 + DIGIT_PIXELS)) throw new RangeError(`not a digits file: ${bytes.length} bytes for ${count} digits`)
  return { count, labels: bytes.subarray(4, 4 + count), pixels: bytes.subarray(4 + count) }
}

/** Grey levels as the model's input: float32 in [0, 1]. */
export function toModelInput(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length)
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 255
  return out
}
