/**
 * A parser for server-sent events (the WHATWG event-stream format), fed text as it arrives in chunks of
 * any size. No parser package is installed, and the format is a few rules: lines end in \n, \r\n or \r;
 * a blank line ends an event; `field: value` (one space after the colon dropped); a line starting with ':'
 * is a comment (keep-alives), which still counts as the stream being alive.
 */
export interface SseEvent {
  /** 'message' when the event named none. */
  event: string
  data: string
  /** The event's `id:`, if it had one. */
  id?: string
}

export class SseParser {
  private buffer = ''
  private event = ''
  private data: string[] = []
  private id: string | undefined
  /** A '\r' ended the last chunk: a '\n' starting the next belongs to it. */
  private pendingCr = false

  /** The events that `chunk` completes. */
  push(chunk: string): SseEvent[] {
    if (this.pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1)
    this.pendingCr = chunk.endsWith('\r')
    this.buffer += chunk
    const lines = this.buffer.split(/\r\n|\r|\n/)
    this.buffer = lines.pop()!
    const events: SseEvent[] = []
    for (const line of lines) {
      if (line === '') {
        if (this.data.length > 0) events.push({ event: this.event || 'message', data: this.data.join('\n'), ...(this.id !== undefined ? { id: this.id } : {}) })
        this.event = ''
        this.data = []
        this.id = undefined
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') this.event = value
      else if (field === 'data') this.data.push(value)
      else if (field === 'id' && !value.includes('\0')) this.id = value
    }
    return events
  }
}
