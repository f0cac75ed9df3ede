/**
 * Maps positions in a bundle back to the user's file, from the bundle's inline source map,
 * so a remote stack points at the editor's line. (VLQ decoding: the source map v3 format.)
 */
export interface SourceMapJson { sources: string[]; mappings: string }

const B64 = new Map([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]))

/** Per generated line: [generated column, source index, source line, source column], sorted by column. */
type Segment = [number, number, number, number]

function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = []
  let src = 0, srcLine = 0, srcCol = 0
  for (const line of mappings.split(';')) {
    const segs: Segment[] = []
    let genCol = 0
    for (const seg of line.split(',')) {
      if (!seg) continue
      const v: number[] = []
      let value = 0, shift = 0
      for (const ch of seg) {
        const digit = B64.get(ch) ?? 0
        value += (digit & 31) << shift
        if (digit & 32) { shift += 5; continue }
        v.push(value & 1 ? -(value >>> 1) : value >>> 1)
        value = 0; shift = 0
      }
      genCol += v[0]
      if (v.length >= 4) { src += v[1]; srcLine += v[2]; srcCol += v[3]; segs.push([genCol, src, srcLine, srcCol]) }
    }
    lines.push(segs)
  }
  return lines
}

export class BundleMap {
  private readonly lines: Segment[][]
  constructor(private readonly map: SourceMapJson) { this.lines = decodeMappings(map.mappings) }

  /** The inline map esbuild appends to a bundle (`sourcemap: 'inline'`). */
  static fromBundle(code: string): BundleMap | undefined {
    const m = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code)
    if (!m) return undefined
    return new BundleMap(JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(m[1]), (c) => c.charCodeAt(0)))) as SourceMapJson)
  }

  /** 1-based line and column in the bundle → the source file and 1-based line there. */
  original(line: number, column: number): { source: string; line: number; column: number } | undefined {
    const segs = this.lines[line - 1]
    if (!segs?.length) return undefined
    let best: Segment | undefined
    for (const s of segs) { if (s[0] <= column - 1) best = s; else break }
    best ??= segs[0]
    return { source: this.map.sources[best[1]] ?? '?', line: best[2] + 1, column: best[3] + 1 }
  }
}

export interface StackLine { text: string; line?: number }

/**
 * Rewrites a stack's frames that point into the bundle (a blob: URL in tabs and this page,
 * `bundles/<hash>.mjs` on Node peers) to `file:line:column`, and picks out the user's lines.
 * Node peers already rewrite frames with the inline map, so `file:line` frames are kept as they are.
 */
export function mapStack(stack: string, map: BundleMap | undefined, file: string): StackLine[] {
  const ours = new RegExp(`(?:^|[/(:\\s])${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+)`)
  return stack.split('\n').map((text) => {
    const direct = ours.exec(text)
    if (direct) return { text: text.trim(), line: Number(direct[1]) }
    const gen = /(blob:[^\s)]+|bundles\/[0-9a-f]+\.mjs|colony-bundle[^\s):]*):(\d+):(\d+)/.exec(text)
    const pos = gen && map?.original(Number(gen[2]), Number(gen[3]))
    if (pos) return { text: text.trim().replace(gen![0], `${pos.source}:${pos.line}:${pos.column}`), line: pos.source.endsWith(file) ? pos.line : undefined }
    return { text: text.trim() }
  })
}
