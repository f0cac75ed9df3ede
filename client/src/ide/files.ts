/** The user's files, kept in this browser (localStorage), seeded with the examples. */
import { EXAMPLES } from './examples.js'

const KEY = 'colony.ide.files'

export class FileStore {
  private files: Record<string, string>

  constructor() {
    let saved: Record<string, string> = {}
    try { saved = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Record<string, string> } catch { /* a damaged store starts afresh */ }
    this.files = { ...Object.fromEntries(EXAMPLES.map((e) => [e.file, e.source])), ...saved }
  }

  names(): string[] { return Object.keys(this.files).sort() }
  all(): Record<string, string> { return { ...this.files } }
  get(name: string): string | undefined { return this.files[name] }
  has(name: string): boolean { return name in this.files }

  set(name: string, source: string): void {
    this.files[name] = source
    localStorage.setItem(KEY, JSON.stringify(this.files))
  }

  remove(name: string): void {
    delete this.files[name]
    localStorage.setItem(KEY, JSON.stringify(this.files))
  }

  /** Puts an example back as it shipped. */
  reset(name: string): void {
    const ex = EXAMPLES.find((e) => e.file === name)
    if (ex) this.set(name, ex.source)
  }
}
