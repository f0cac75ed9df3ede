/**
 * WebRTC in Node: simple-peer on node-datachannel's polyfill, which is faster than
 * @roamhq/wrtc and fires `bufferedamountlow` (see PLATFORM.md).
 */
import nodeDataChannel from 'node-datachannel'
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

/** Connections made and closed in this process: a process with one left open does not exit (node-datachannel keeps it alive). */
export const rtcCounts = { made: 0, closed: 0 }

/**
 * Closed connections are not enough for a process to exit: node-datachannel's native wrappers
 * keep it alive until they are collected, which an idle process may never do (a test file hung
 * after its last test with every connection closed and libdatachannel's threads still running).
 * Once no connection is open in the process, its `cleanup()` lets them go; a later connection
 * starts it again.
 */
function releaseIfIdle(): void {
  // After this turn: simple-peer closes its connection as it is destroyed, which may come a tick later.
  setImmediate(() => { if (rtcCounts.made === rtcCounts.closed) nodeDataChannel.cleanup() })
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
    private closedOnce = false
    constructor(config: object) { super(bindAddress ? { ...config, bindAddress } : config); rtcCounts.made++ }
    close(): void { if (!this.closedOnce) { this.closedOnce = true; rtcCounts.closed++ } (Base.prototype as unknown as { close(): void }).close.call(this) }
    override async createOffer(o?: object) { const d = await super.createOffer(o); return { type: d.type, sdp: d.sdp } }
    override async createAnswer(o?: object) { const d = await super.createAnswer(o); return { type: d.type, sdp: d.sdp } }
    // The polyfill shows the remote description before libdatachannel has made the ICE transport, so a
    // candidate that simple-peer passes on at once fails ("remote candidate without ICE transport").
    override setRemoteDescription(d: object) { this.remoteSet = super.setRemoteDescription(d); return this.remoteSet }
    override async addIceCandidate(c: object) { await this.remoteSet; return super.addIceCandidate(c) }
  }
  const wrtc = { ...polyfill, RTCPeerConnection: PeerConnection }
  const factory: RtcFactory = ({ initiator, iceServers, relayOnly }) => new SimplePeer({
    initiator, wrtc: wrtc as unknown as SimplePeer.Options['wrtc'], trickle: true,
    config: { iceServers: iceServers.map(urlSafeCredentials), iceTransportPolicy: relayOnly ? 'relay' : 'all' },
  }) as unknown as RtcPeerLike
  factory.release = releaseIfIdle
  return factory
}
