/**
 * Error codes of protocol v1. Stable: clients switch on `code`, never on `message`.
 * `retryable` tells a client whether repeating the same request later can succeed; `http` is the status the
 * HTTP API answers with (the body carries the same code).
 * Every code is documented with an example in docs/protocol.md.
 */
export const ErrorCodes = {
  bad_json: { http: 400, retryable: false, text: 'frame is not valid JSON' },
  bad_frame: { http: 400, retryable: false, text: 'frame does not match the protocol schema' },
  unknown_type: { http: 400, retryable: false, text: 'unknown frame type' },
  frame_too_large: { http: 413, retryable: false, text: 'frame exceeds the size limit' },
  not_connected: { http: 400, retryable: false, text: 'send a connect frame first' },
  already_connected: { http: 400, retryable: false, text: 'connect was already accepted on this connection' },
  unauthorized: { http: 401, retryable: false, text: 'missing or invalid token' },
  token_expired: { http: 401, retryable: true, text: 'token has expired' },
  token_revoked: { http: 401, retryable: false, text: 'token has been revoked' },
  too_many_connections: { http: 429, retryable: true, text: 'the user has the maximum number of connections' },
  bad_room: { http: 400, retryable: false, text: 'invalid room name' },
  forbidden: { http: 403, retryable: false, text: 'the token does not allow this room' },
  not_joined: { http: 409, retryable: false, text: 'join the room before publishing to it' },
  too_many_rooms: { http: 400, retryable: false, text: 'connection joined the maximum number of rooms' },
  bad_request: { http: 400, retryable: false, text: 'invalid request' },
  bad_topic: { http: 400, retryable: false, text: 'invalid service topic' },
  no_service: { http: 503, retryable: true, text: 'no instance of the service is running' },
  rpc_timeout: { http: 504, retryable: true, text: 'the service did not answer in time' },
  service_error: { http: 502, retryable: false, text: 'the service handler failed' },
  services_disabled: { http: 501, retryable: false, text: 'backend services need a node started with --nats' },
  refused: { http: 403, retryable: false, text: 'the application refused the request' },
  rate_limited: { http: 429, retryable: true, text: 'too many requests' },
  unavailable: { http: 503, retryable: true, text: 'a backing service is unavailable' },
  internal: { http: 500, retryable: true, text: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** The one error type the gateway raises for client-visible failures. */
export class SwitchboardError extends Error {
  override readonly name = 'SwitchboardError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** The HTTP status of this code (protocol/errors.ts table). */
  get httpStatus(): number {
    return ErrorCodes[this.code].http;
  }
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code].text, options);
    this.code = code;
    this.retryable = ErrorCodes[code].retryable;
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}
