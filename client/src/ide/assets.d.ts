/** Vite turns `import x from 'file?url'` into the URL the built file is served at. */
declare module '*?url' {
  const url: string
  export default url
}

/** The export names of tfjs and onnxruntime-web, listed when the page is built (client/vite.config.ts). */
declare module 'virtual:ml-exports' {
  const names: { tfjs: string[]; ort: string[] }
  export default names
}
