/**
 * Error codes of protocol v1. Stable: clients switch on `code`, never on `message`.
 * `retryable` tells a client whether repeating the same request later can succeed.
 * Every code is documented with an example in docs/protocol.md.
 */
export const ErrorCodes = {
  bad_json: { retryable: false, text: 'frame is not valid JSON' },
  bad_frame: { retryable: false, text: 'frame does not match the protocol schema' },
  unknown_type: { retryable: false, text: 'unknown frame type' },
  frame_too_large: { retryable: false, text: 'frame exceeds the size limit' },
  not_connected: { retryable: false, text: 'send a connect frame first' },
  already_connected: { retryable: false, text: 'connect was already accepted on this connection' },
  unauthorized: { retryable: false, text: 'missing or invalid token' },
  token_expired: { retryable: true, text: 'token has expired' },
  bad_room: { retryable: false, text: 'invalid room name' },
  forbidden: { retryable: false, text: 'the token does not allow this room' },
  not_joined: { retryable: false, text: 'join the room before publishing to it' },
  too_many_rooms: { retryable: false, text: 'connection joined the maximum number of rooms' },
  bad_request: { retryable: false, text: 'invalid request' },
  bad_topic: { retryable: false, text: 'invalid service topic' },
  no_service: { retryable: true, text: 'no instance of the service is running' },
  rpc_timeout: { retryable: true, text: 'the service did not answer in time' },
  service_error: { retryable: false, text: 'the service handler failed' },
  services_disabled: { retryable: false, text: 'backend services need a node started with --nats' },
  rate_limited: { retryable: true, text: 'too many requests' },
  unavailable: { retryable: true, text: 'a backing service is unavailable' },
  internal: { retryable: true, text: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** The one error type the gateway raises for client-visible failures. */
export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code].text, options);
    this.code = code;
    this.retryable = ErrorCodes[code].retryable;
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}
