/**
 * For pages of other packages: WebRTC for a browser driver (`connect(url, { rtc: browserRtc })`).
 * The tab runtime (tab.ts) is built into the join page here, with its Web Worker entry.
 */
export { browserRtc } from './rtc.js'
