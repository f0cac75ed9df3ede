/**
 * The demo's convnet as an ONNX graph, built from trained weights with onnx-proto:
 * pixels [N, 784] -> Reshape [N, 1, 28, 28] -> Conv 5×5/2 -> Relu -> Transpose to NHWC
 * (so flattening matches tfjs) -> Flatten -> MatMul+Add -> Relu -> MatMul+Add -> Softmax.
 */
import onnxProto from 'onnx-proto'

const { onnx } = onnxProto
const FLOAT = onnx.TensorProto.DataType.FLOAT

export interface ConvnetWeights {
  /** tfjs order: [kh][kw][in=1][out]. */
  conv: { kernel: number[][][][]; bias: Float32Array }
  dense: { w: Float32Array; b: Float32Array; shape: [number, number] }[]
}

const floats = (name: string, dims: number[], data: ArrayLike<number>) =>
  onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(Float32Array.from(data).buffer) })
const ints = (name: string, data: number[]) =>
  onnx.TensorProto.create({ name, dims: [data.length], dataType: onnx.TensorProto.DataType.INT64, int64Data: data })
const intsAttr = (name: string, v: number[]) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v })
const intAttr = (name: string, v: number) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v })
const node = (opType: string, input: string[], output: string[], attribute: unknown[] = []) =>
  onnx.NodeProto.create({ opType, input, output, name: output[0], attribute: attribute as never })
const valueInfo = (name: string, dims: (number | string)[]) => onnx.ValueInfoProto.create({
  name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
})

export function mnistOnnx(w: ConvnetWeights): Uint8Array {
  const k = w.conv.kernel, kh = k.length, kw = k[0].length, filters = k[0][0][0].length
  const oihw: number[] = []
  for (let o = 0; o < filters; o++) for (let r = 0; r < kh; r++) for (let c = 0; c < kw; c++) oihw.push(k[r][c][0][o])
  const [d1, d2] = w.dense
  const graph = onnx.GraphProto.create({
    name: 'mnist-convnet',
    input: [valueInfo('pixels', ['N', 784])],
    output: [valueInfo('probs', ['N', 10])],
    initializer: [
      ints('image_shape', [-1, 1, 28, 28]), floats('conv_w', [filters, 1, kh, kw], oihw), floats('conv_b', [filters], w.conv.bias),
      ints('flat_shape', [-1, d1.shape[0]]),
      floats('d1_w', d1.shape, d1.w), floats('d1_b', [d1.shape[1]], d1.b),
      floats('d2_w', d2.shape, d2.w), floats('d2_b', [d2.shape[1]], d2.b),
    ],
    node: [
      node('Reshape', ['pixels', 'image_shape'], ['image']),
      node('Conv', ['image', 'conv_w', 'conv_b'], ['conv'], [intsAttr('kernel_shape', [kh, kw]), intsAttr('strides', [2, 2])]),
      node('Relu', ['conv'], ['conv_relu']),
      node('Transpose', ['conv_relu'], ['nhwc'], [intsAttr('perm', [0, 2, 3, 1])]),
      node('Reshape', ['nhwc', 'flat_shape'], ['flat']),
      node('MatMul', ['flat', 'd1_w'], ['m1']), node('Add', ['m1', 'd1_b'], ['a1']), node('Relu', ['a1'], ['h1']),
      node('MatMul', ['h1', 'd2_w'], ['m2']), node('Add', ['m2', 'd2_b'], ['logits']),
      node('Softmax', ['logits'], ['probs'], [intAttr('axis', 1)]),
    ],
  })
  const model = onnx.ModelProto.create({ irVersion: 8, producerName: 'colony-demo', graph, opsetImport: [{ domain: '', version: 13 }] })
  return onnx.ModelProto.encode(model).finish()
}
