/**
 * Loaded into a peer process with `NODE_OPTIONS=--import=<this file>` by the chaos run's auth
 * scenario: SIGUSR2 moves the process's clock (Date.now) 3 minutes ahead, and the next SIGUSR2
 * moves it back. A grant the coordinator signed a moment ago (they last 60 s) is then, to this
 * holder, one whose time is up: its expiry check is tested with a genuine grant, without waiting.
 */
const realNow = Date.now.bind(Date)
let ahead = 0
Date.now = () => realNow() + ahead
process.on('SIGUSR2', () => {
  ahead = ahead ? 0 : 3 * 60_000
  console.error(`[clock] this process's clock is ${ahead / 60_000} minutes ahead`)
})
export {}
