/** Models the training and tuning tests share, as tfjs writes their topologies. */

/** A small multilayer perceptron, as tfjs writes its topology, from seeded initializers. */
export const mlp = (hidden = 64) => ({
  class_name: 'Sequential',
  config: {
    name: 'mlp',
    layers: [
      { class_name: 'Dense', config: { name: 'hidden', units: hidden, activation: 'relu', use_bias: true, batch_input_shape: [null, 784], dtype: 'float32', trainable: true,
        kernel_initializer: { class_name: 'GlorotUniform', config: { seed: 11 } }, bias_initializer: { class_name: 'Zeros', config: {} } } },
      { class_name: 'Dense', config: { name: 'out', units: 10, activation: 'softmax', use_bias: true, trainable: true,
        kernel_initializer: { class_name: 'GlorotUniform', config: { seed: 12 } }, bias_initializer: { class_name: 'Zeros', config: {} } } },
    ],
  },
  keras_version: 'tfjs-layers', backend: 'tensor_flow.js',
})
