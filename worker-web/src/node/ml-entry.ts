/** The ML runtimes Node executors load on first use of `colony.ml`, bundled into one file (see ml-files.ts). */
export * as tf from '@tensorflow/tfjs'
export * as tfWasm from '@tensorflow/tfjs-backend-wasm'
export * as ort from 'onnxruntime-web'
