/**
 * A tiny ONNX model built in code, for timing onnxruntime-web's backends at join:
 * y = x · W, with x of shape [N, 64] (N symbolic) and W a fixed 64x64 matrix, opset 13.
 * Encoded by hand (a few protobuf fields), so the probe ships no model and no encoder.
 */
class Proto {
  private readonly out: number[] = []
  private varint(n: number): void { while (n > 127) { this.out.push((n & 127) | 128); n = Math.floor(n / 128) } this.out.push(n) }
  private tag(field: number, wire: number): void { this.varint((field << 3) | wire) }
  int(field: number, v: number): this { this.tag(field, 0); this.varint(v); return this }
  bytes(field: number, b: Uint8Array): this { this.tag(field, 2); this.varint(b.length); for (const x of b) this.out.push(x); return this }
  str(field: number, s: string): this { return this.bytes(field, new TextEncoder().encode(s)) }
  msg(field: number, m: Proto): this { return this.bytes(field, m.done()) }
  done(): Uint8Array { return new Uint8Array(this.out) }
}

const FLOAT = 1
const SIZE = 64

function tensorType(): Proto {
  const shape = new Proto().msg(1, new Proto().str(2, 'N')).msg(1, new Proto().int(1, SIZE))
  return new Proto().msg(1, new Proto().int(1, FLOAT).msg(2, shape))
}

export function matmulProbeModel(): Uint8Array {
  const w = new Float32Array(SIZE * SIZE)
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(i) / SIZE
  const weight = new Proto().int(1, SIZE).int(1, SIZE).int(2, FLOAT).str(8, 'W').bytes(9, new Uint8Array(w.buffer))
  const node = new Proto().str(1, 'x').str(1, 'W').str(2, 'y').str(3, 'matmul').str(4, 'MatMul')
  const graph = new Proto().msg(1, node).str(2, 'colony-probe').msg(5, weight)
    .msg(11, new Proto().str(1, 'x').msg(2, tensorType()))
    .msg(12, new Proto().str(1, 'y').msg(2, tensorType()))
  return new Proto().int(1, 8).str(2, 'colony').msg(7, graph).msg(8, new Proto().str(1, '').int(2, 13)).done()
}

export const PROBE_INPUT_SIZE = SIZE
