/** Vite turns `import x from 'file?url'` into the URL the built file is served at. */
declare module '*?url' {
  const url: string
  export default url
}
