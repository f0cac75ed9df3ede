/** The code editor: CodeMirror 6 with TypeScript highlighting, Mod-Enter to run, and a mark for the line an error points at. */
import { EditorView, basicSetup } from 'codemirror'
import { javascript } from '@codemirror/lang-javascript'
import { EditorState, StateEffect, StateField, type Extension } from '@codemirror/state'
import { Decoration, keymap, type DecorationSet } from '@codemirror/view'

const markLine = StateEffect.define<number | null>()
const errorLine = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    for (const e of tr.effects) {
      if (!e.is(markLine)) continue
      if (e.value === null || e.value < 1 || e.value > tr.state.doc.lines) return Decoration.none
      return Decoration.set([Decoration.line({ class: 'cm-error-line' }).range(tr.state.doc.line(e.value).from)])
    }
    return tr.docChanged ? Decoration.none : deco.map(tr.changes)
  },
  provide: (f) => EditorView.decorations.from(f),
})

export class CodeEditor {
  readonly view: EditorView
  private extensions: Extension[]

  constructor(parent: HTMLElement, onRun: () => void, onChange: () => void) {
    this.extensions = [
      basicSetup, javascript({ typescript: true }), errorLine,
      keymap.of([{ key: 'Mod-Enter', run: () => { onRun(); return true } }]),
      EditorView.updateListener.of((u) => { if (u.docChanged) onChange() }),
    ]
    this.view = new EditorView({ parent, state: EditorState.create({ doc: '', extensions: this.extensions }) })
  }

  get text(): string { return this.view.state.doc.toString() }

  /** Shows another file (with its own undo history). */
  load(text: string): void { this.view.setState(EditorState.create({ doc: text, extensions: this.extensions })) }

  /** Marks a line (1-based) and scrolls to it; null clears the mark. */
  mark(line: number | null): void {
    const effects: StateEffect<unknown>[] = [markLine.of(line)]
    if (line !== null && line >= 1 && line <= this.view.state.doc.lines) {
      const pos = this.view.state.doc.line(line).from
      effects.push(EditorView.scrollIntoView(pos, { y: 'center' }))
      this.view.dispatch({ effects, selection: { anchor: pos } })
    } else this.view.dispatch({ effects })
  }
}
