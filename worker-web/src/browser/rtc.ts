/** WebRTC in the browser: simple-peer's prebuilt bundle on the page's own RTCPeerConnection. */
// A plain `import 'simple-peer'` fails under Vite 8 (global is not defined); the prebuilt bundle does not.
// @ts-expect-error the minified bundle ships no types
import SimplePeer from 'simple-peer/simplepeer.min.js'
import type { RtcFactory, RtcPeerLike } from '../core/data-plane.js'

export const browserRtc: RtcFactory = ({ initiator, iceServers, relayOnly }) => new (SimplePeer as new (o: object) => RtcPeerLike)({
  initiator, trickle: true, config: { iceServers, iceTransportPolicy: relayOnly ? 'relay' : 'all' },
})
