/**
 * WebRTC in Node: simple-peer on node-datachannel's polyfill, which is faster than
 * @roamhq/wrtc and fires `bufferedamountlow` (see PLATFORM.md).
 */
import polyfill from 'node-datachannel/polyfill'
import SimplePeer from 'simple-peer'
import { createHash } from 'node:crypto'
import type { RtcFactory, RtcPeerLike, StreamingHash } from '../core/data-plane.js'

/** node:crypto's SHA-256, fed chunk by chunk as an object arrives. */
export function nodeSha256(): StreamingHash {
  const h = createHash('sha256')
  return { update: (b) => { h.update(b) }, digest: () => h.digest('hex') }
}

/**
 * The polyfill writes TURN credentials into a URL (`turn:user:pass@host`), which libdatachannel
 * percent-decodes: unencoded, coturn's time-limited usernames (`expiry:name`, with a colon) and
 * base64 passwords (`/`, `+`) would be cut apart and every allocation refused.
 */
function urlSafeCredentials<T extends { username?: string; credential?: string }>(s: T): T {
  return s.username && s.credential ? { ...s, username: encodeURIComponent(s.username), credential: encodeURIComponent(s.credential) } : s
}

/** `bindAddress`: bind ICE to one local address (127.0.0.1 when all peers are on loopback). */
export function nodeRtc(bindAddress?: string): RtcFactory {
  const Base = polyfill.RTCPeerConnection as unknown as new (c: object) => {
    createOffer(o?: object): Promise<{ type: string; sdp: string }>
    createAnswer(o?: object): Promise<{ type: string; sdp: string }>
    setRemoteDescription(d: object): Promise<void>
    addIceCandidate(c: object): Promise<void>
  }
  // simple-peer needs plain description objects, and bindAddress is not part of the W3C config.
  class PeerConnection extends Base {
    private remoteSet?: Promise<void>
    constructor(config: object) { super(bindAddress ? { ...config, bindAddress } : config) }
    override async createOffer(o?: object) { const d = await super.createOffer(o); return { type: d.type, sdp: d.sdp } }
    override async createAnswer(o?: object) { const d = await super.createAnswer(o); return { type: d.type, sdp: d.sdp } }
    // The polyfill shows the remote description before libdatachannel has made the ICE transport, so a
    // candidate that simple-peer passes on at once fails ("remote candidate without ICE transport").
    override setRemoteDescription(d: object) { this.remoteSet = super.setRemoteDescription(d); return this.remoteSet }
    override async addIceCandidate(c: object) { await this.remoteSet; return super.addIceCandidate(c) }
  }
  const wrtc = { ...polyfill, RTCPeerConnection: PeerConnection }
  return ({ initiator, iceServers, relayOnly }) => new SimplePeer({
    initiator, wrtc: wrtc as unknown as SimplePeer.Options['wrtc'], trickle: true,
    config: { iceServers: iceServers.map(urlSafeCredentials), iceTransportPolicy: relayOnly ? 'relay' : 'all' },
  }) as unknown as RtcPeerLike
}
