/**
 * WebSocket close codes used by the server, and the one rule for what a client does after a close (used by
 * the client SDK, exported for other clients). A contract with clients (docs/protocol.md §6):
 * - terminal (do not reconnect; the same client would fail the same way): 4500–4999, 1009 (a frame over the
 *   hard size limit), 1002, 1003 and 1007 (the WebSocket layer refused what the client sent: a broken frame,
 *   binary data, text that is not UTF-8), 1008 (policy violation).
 * - everything else reconnects with backoff: 1000, 1001, 1006 (abnormal closure, never sent, seen when the
 *   socket drops), 1011 (unexpected server error), 1012/1013, 4000–4499 (after a `notice` with
 *   `reconnectAfterMs`, not before that delay; 4005 and 4006 only with a fresh token), and codes not listed here.
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
  /** The token was revoked (POST /api/revoke); reconnect only with a fresh token. */
  tokenRevoked: 4006,
  /** The user already has the maximum number of connections (maxConnectionsPerUser); reconnect with backoff. */
  tooManyConnections: 4007,
  /** Invalid or missing token; terminal. */
  unauthorized: 4500,
  /** Repeated protocol violations; terminal. */
  protocolViolation: 4501,
} as const;

export type CloseCodeName = keyof typeof CloseCodes;

/** Codes from the WebSocket layer that mean the client sent something the server cannot accept. */
const TERMINAL_WS_CODES: readonly number[] = [1002, 1003, 1007, 1008, 1009];

/** True when a client must not reconnect after this close code (see the rule above). */
export function isTerminalCloseCode(code: number): boolean {
  return (code >= 4500 && code <= 4999) || TERMINAL_WS_CODES.includes(code);
}

/** True when a client should reconnect (with backoff) after this close code: every code that is not terminal. */
export function isReconnectCode(code: number): boolean {
  return !isTerminalCloseCode(code);
}
