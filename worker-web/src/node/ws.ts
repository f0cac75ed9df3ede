import WebSocket from 'ws'
import type { WebSocketFactory, WebSocketLike } from '../core/connection.js'

/** The `ws` package behind the WebSocketLike shape the peer core uses. */
export const nodeWebSocket: WebSocketFactory = (url) =>
  new WebSocket(url, { maxPayload: 256 * 1024 * 1024, perMessageDeflate: false }) as unknown as WebSocketLike
