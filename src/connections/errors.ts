/**
 * The error of the connection helpers: a NATS or Redis connection that cannot be opened (`unavailable`, with
 * the driver's error as `cause`) or a URL that cannot be used (`invalid`). Shared by the engines, the node's
 * services and the backend SDK, so it lives below all of them.
 */
export type ConnectionErrorCode = 'unavailable' | 'invalid';

export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly service: 'nats' | 'redis' | 'jetstream',
    readonly code: ConnectionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
