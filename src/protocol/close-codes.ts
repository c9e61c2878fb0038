/**
 * WebSocket close codes used by the server. A contract with clients:
 * - 1000, 1001, 1006 (abnormal closure, never sent, seen when the socket drops) and 4000–4499: the
 *   client should reconnect (with backoff; after a `notice` with
 *   `reconnectAfterMs`, not before that delay).
 * - 4500–4999: terminal: reconnecting with the same credentials will fail the same way.
 * - 1009: a frame over the hard size limit (the socket is closed by the WebSocket layer).
 */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  /** A WebSocket protocol violation detected by the WebSocket layer. */
  protocolError: 1002,
  tooBig: 1009,
  /** Server-side failure; reconnect. */
  internal: 4000,
  /** The node is shutting down; reconnect (to another node) after the notice's delay. */
  shutdown: 4001,
  /** No pong within the heartbeat deadline. */
  heartbeatTimeout: 4002,
  /** The outbound buffer passed its bound: the client reads too slowly. */
  slowConsumer: 4003,
  /** No connect frame within the connect timeout. */
  connectTimeout: 4004,
  /** The token expired on an open connection; reconnect with a fresh token. */
  tokenExpired: 4005,
  /** Invalid or missing token; terminal. */
  unauthorized: 4500,
  /** Repeated protocol violations; terminal. */
  protocolViolation: 4501,
} as const;

export type CloseCodeName = keyof typeof CloseCodes;

export function isReconnectCode(code: number): boolean {
  return code === 1000 || code === 1001 || code === 1006 || (code >= 4000 && code < 4500);
}
