/**
 * Node opens its inspector on SIGUSR1, and an inspector runs any code as this process (which
 * holds the join token, and under `colony up` every token). Any JS listener for SIGUSR1 stops
 * that (checked on Node 20): this one only says, once, that a signal came and was ignored.
 * Installed once per process, for the life of the process (removing it would open the door again).
 */
let installed = false

export function refuseInspectorSignal(say: (line: string) => void = (l) => console.error(l)): void {
  // One listener is enough; `colony up` has one already (the coordinator's process is its peers').
  if (installed || process.listenerCount('SIGUSR1') > 0) return
  installed = true
  let said = false
  process.on('SIGUSR1', () => {
    if (said) return
    said = true
    say('ignoring SIGUSR1: this process never opens an inspector (did job code send it?)')
  })
}
