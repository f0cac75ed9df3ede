/** The Serve mode's digits: from a canvas drawn on to 28×28 grey levels as MNIST's, back onto a canvas, and moved by a pixel. */
import { DIGIT_PIXELS } from '../digits-file.js'

/** A 28×28 digit; its strokes fit a 20×20 box in it, centred by their centre of mass, as MNIST's. */
export const SIDE = 28, BOX = 20

/** A digit moved by (dx, dy) pixels, what the edges leave black. */
export function shifted(px: Uint8Array, dx: number, dy: number): Uint8Array {
  if (!dx && !dy) return px
  const out = new Uint8Array(DIGIT_PIXELS)
  for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) {
    const sx = x - dx, sy = y - dy
    if (sx >= 0 && sx < SIDE && sy >= 0 && sy < SIDE) out[y * SIDE + x] = px[sy * SIDE + sx]
  }
  return out
}

/**
 * The canvas's drawing as MNIST's digits are: the strokes' bounding box scaled (averaging its pixels)
 * to fit 20×20, put in 28×28 with the centre of mass in the middle. Undefined for an empty canvas.
 */
export function toDigit(canvas: HTMLCanvasElement): Uint8Array | undefined {
  const { width: w, height: h } = canvas
  const rgba = canvas.getContext('2d', { willReadFrequently: true })!.getImageData(0, 0, w, h).data
  let x0 = w, y0 = h, x1 = -1, y1 = -1
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (rgba[(y * w + x) * 4] > 24) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y) }
  }
  if (x1 < 0) return undefined
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1
  const scale = BOX / Math.max(bw, bh)
  const tw = Math.max(1, Math.round(bw * scale)), th = Math.max(1, Math.round(bh * scale))
  const small = new Float32Array(tw * th)
  let mass = 0, mx = 0, my = 0
  for (let ty = 0; ty < th; ty++) for (let tx = 0; tx < tw; tx++) {
    const sx0 = x0 + Math.floor(tx / scale), sx1 = Math.min(x1 + 1, Math.max(sx0 + 1, x0 + Math.ceil((tx + 1) / scale)))
    const sy0 = y0 + Math.floor(ty / scale), sy1 = Math.min(y1 + 1, Math.max(sy0 + 1, y0 + Math.ceil((ty + 1) / scale)))
    let sum = 0, n = 0
    for (let y = sy0; y < sy1; y++) for (let x = sx0; x < sx1; x++) { sum += rgba[(y * w + x) * 4]; n++ }
    const v = n ? sum / n : 0
    small[ty * tw + tx] = v
    mass += v; mx += (tx + 0.5) * v; my += (ty + 0.5) * v
  }
  const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi, v))
  const ox = clamp(Math.round(SIDE / 2 - mx / mass), SIDE - tw), oy = clamp(Math.round(SIDE / 2 - my / mass), SIDE - th)
  const out = new Uint8Array(DIGIT_PIXELS)
  for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) out[(oy + y) * SIDE + ox + x] = Math.round(small[y * tw + x])
  return out
}

/** Grey levels (28×28) drawn on a canvas, scaled to fill it. */
export function paintDigit(canvas: HTMLCanvasElement, px: Uint8Array, smooth: boolean): void {
  const off = document.createElement('canvas')
  off.width = off.height = SIDE
  const img = new ImageData(SIDE, SIDE)
  for (let i = 0; i < DIGIT_PIXELS; i++) { img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = px[i]; img.data[4 * i + 3] = 255 }
  off.getContext('2d')!.putImageData(img, 0, 0)
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!
  ctx.imageSmoothingEnabled = smooth
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height)
}
