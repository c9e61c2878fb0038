/**
 * WebSocket close codes used by the server. A contract with clients (docs/protocol.md §6):
 * - 1000, 1001, 1006 (abnormal closure, never sent, seen when the socket drops) and 4000–4499: the
 *   client should reconnect (with backoff; after a `notice` with
 *   `reconnectAfterMs`, not before that delay).
 * - 4500–4999: terminal: reconnecting with the same credentials will fail the same way.
 * - 1002, 1007, 1008, 1009: sent by the WebSocket layer (`ws`) for a frame that breaks RFC 6455 or a
 *   size/fragment limit. A client bug: the same client sends the same frame again, so these are not in
 *   the reconnect set (fix the client; do not resend that frame).
 */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  /**
   * A WebSocket protocol violation detected by the WebSocket layer (RFC 6455): a continuation frame with
   * no message to continue, a reserved opcode, RSV bits set, an unmasked client frame, a control frame
   * over 125 bytes or fragmented, a text/binary frame inside a fragmented message, an invalid close code.
   */
  protocolError: 1002,
  /** Invalid UTF-8 in a text frame or in a close frame's reason (RFC 6455 §8.1), by the WebSocket layer. */
  invalidPayload: 1007,
  /** A message split into more than 16,384 fragments, by the WebSocket layer. */
  policyViolation: 1008,
  /** A frame over 4 × maxFrameBytes, by the WebSocket layer. */
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
