/**
 * The one error type of the client SDK. `code` is stable (switch on it, never on `message`): either one of
 * the server's protocol error codes (docs/protocol.md §5) or a client code below. `retryable` says whether
 * repeating the operation later can succeed.
 */
import { ErrorCodes, isErrorCode, type ErrorCode } from '../protocol/errors.js';
import type { ErrorFrame } from '../protocol/wire.js';

/** Codes raised by the SDK itself (no server frame behind them). */
export const ClientErrorCodes = {
  /** A request got no reply within `requestTimeoutMs`. */
  timeout: { retryable: true, text: 'request timed out' },
  /** The connection dropped before the reply arrived. */
  disconnected: { retryable: true, text: 'connection lost' },
  /** `publish` while the offline queue holds `offlineQueue.max` messages. */
  offline_queue_full: { retryable: true, text: 'offline queue is full' },
  /** The client (or the room) was closed; the operation will not complete. */
  closed: { retryable: false, text: 'client closed' },
  /** A bad argument or option, found before anything was sent. */
  invalid_argument: { retryable: false, text: 'invalid argument' },
  /** `getToken()` threw or returned something that is not a non-empty string. */
  token_unavailable: { retryable: false, text: 'getToken() failed' },
  /** The server closed the connection with a terminal close code (protocol/close-codes.ts: 4500–4999, 1002, 1003, 1007–1009). */
  terminal_close: { retryable: false, text: 'the server closed the connection for good' },
} as const;

export type ClientErrorCode = keyof typeof ClientErrorCodes;
/** Every code a `SwitchboardClientError` can carry. */
export type SwitchboardErrorCode = ErrorCode | ClientErrorCode;

export interface ClientErrorOptions {
  cause?: unknown;
  /** Overrides the code's default. */
  retryable?: boolean;
  /** The WebSocket close code behind the error, when there is one. */
  closeCode?: number;
  /** The room the failed operation was about. */
  room?: string;
}

export class SwitchboardClientError extends Error {
  override readonly name = 'SwitchboardClientError';
  readonly code: SwitchboardErrorCode;
  readonly retryable: boolean;
  readonly closeCode?: number;
  readonly room?: string;

  constructor(code: SwitchboardErrorCode, message?: string, options: ClientErrorOptions = {}) {
    super(message ?? defaultText(code), options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? defaultRetryable(code);
    if (options.closeCode !== undefined) this.closeCode = options.closeCode;
    if (options.room !== undefined) this.room = options.room;
  }
}

function defaultText(code: SwitchboardErrorCode): string {
  return isErrorCode(code) ? ErrorCodes[code].text : ClientErrorCodes[code].text;
}

function defaultRetryable(code: SwitchboardErrorCode): boolean {
  return isErrorCode(code) ? ErrorCodes[code].retryable : ClientErrorCodes[code].retryable;
}

/** A server `error` frame as a typed error (unknown codes, from a newer server, become `internal`). */
export function fromErrorFrame(f: ErrorFrame): SwitchboardClientError {
  const code: SwitchboardErrorCode = isErrorCode(f.code) ? f.code : 'internal';
  return new SwitchboardClientError(code, f.message, { retryable: f.retryable, ...(f.room !== undefined ? { room: f.room } : {}) });
}

export function invalidArgument(message: string): SwitchboardClientError {
  return new SwitchboardClientError('invalid_argument', message);
}
