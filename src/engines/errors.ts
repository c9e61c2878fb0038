/**
 * The one error type of the engines. Every engine failure is an EngineError with the engine that failed, a
 * stable `code` and, where it wraps a driver's error (NATS, Redis, PostgreSQL, the file system), that error
 * as `cause`. Callers branch on `code`, never on the message:
 *   closed       the engine was closed by its owner; nothing will work again
 *   unavailable  the backing service is unreachable or refused the operation; retrying later can work
 *   timeout      no answer within the engine's deadline (the operation may or may not have happened)
 *   full         a bound was reached (pending messages); retrying after the backlog drains can work
 *   conflict     the operation contradicts stored state (a sequence number reused for another message)
 *   in_use       a resource is held by another owner (a data directory locked by a live process)
 *   invalid      bad configuration or an answer the engine cannot interpret; retrying will not help
 */
export type EngineName = 'backplane' | 'presence' | 'roomlog' | 'durablelog' | 'messagestore' | 'webhookqueue' | 'revocations';
export type EngineErrorCode = 'closed' | 'unavailable' | 'timeout' | 'full' | 'conflict' | 'in_use' | 'invalid';

export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly engine: EngineName,
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True for an EngineError (of the given code, when one is named). */
export function isEngineError(err: unknown, code?: EngineErrorCode): err is EngineError {
  return err instanceof EngineError && (code === undefined || err.code === code);
}
