/**
 * What every MessageStore implementation checks before touching its database: which messages can be stored
 * (seq, ts, nesting depth of `data`) and which page queries are valid. Shared so that the embedded stores and
 * PostgreSQL accept and reject exactly the same input.
 */
import { exceedsDepth } from '../../protocol/json-depth.js';
import type { Json, RoomMessage } from '../types.js';
import type { HistoryQuery } from './messagestore.js';

/** Largest `limit` a page may ask for (HistoryQuery). */
export const MAX_PAGE_LIMIT = 1000;

/**
 * Deepest nesting of arrays/objects in `data` the stores accept. PGlite 0.5 was seen to hang the
 * process (spinning in WASM) on the second jsonb value nested ~6,000 deep, and PostgreSQL rejects deep
 * values with "stack depth limit exceeded"; 512 is far below both and far above any sane payload.
 * The gateway should reject deeper payloads at publish time (see `unstorableReason`).
 */
export const MAX_DATA_DEPTH = 512;

/** Thrown by `insert` for a message that cannot be stored as given (retrying will not help). */
export class UnstorableMessageError extends Error {
  /** `tenant/room/seq` of the message. */
  readonly key: string;

  constructor(message: RoomMessage, reason: string) {
    const key = `${message.tenant}/${message.room}/${message.seq}`;
    super(`message ${key} cannot be stored: ${reason}`);
    this.name = 'UnstorableMessageError';
    this.key = key;
  }
}

/**
 * Why `data` cannot be stored, or null when it can. Today the only reason is nesting deeper than
 * MAX_DATA_DEPTH; the gateway can call this at publish time to refuse such payloads up front.
 */
export function unstorableReason(data: Json): string | null {
  return exceedsDepth(data, MAX_DATA_DEPTH) ? `data is nested deeper than ${MAX_DATA_DEPTH} levels` : null;
}

/**
 * Throws TypeError for a seq that is not a positive safe integer or a ts that is not a safe integer, and
 * UnstorableMessageError for `data` nested deeper than MAX_DATA_DEPTH.
 */
export function checkStorable(m: RoomMessage): void {
  if (!Number.isSafeInteger(m.seq) || m.seq < 1) throw new TypeError(`seq must be a positive integer, got ${m.seq}`);
  if (!Number.isSafeInteger(m.ts)) throw new TypeError(`ts must be integer milliseconds, got ${m.ts}`);
  const reason = unstorableReason(m.data);
  if (reason !== null) throw new UnstorableMessageError(m, reason);
}

/** Throws RangeError for a limit outside 1..MAX_PAGE_LIMIT, a negative or non-integer `before`/`after`, or both given. */
export function checkPageQuery(query: HistoryQuery): void {
  const { limit, before, after } = query;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new RangeError(`limit must be an integer between 1 and ${MAX_PAGE_LIMIT}`);
  }
  if (before !== undefined && after !== undefined) throw new RangeError('give before or after, not both');
  for (const [name, value] of [
    ['before', before],
    ['after', after],
  ] as const) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new RangeError(`${name} must be a non-negative integer`);
    }
  }
}

/** A database integer column as a safe JS integer (drivers return bigint as number, string or bigint). */
export function toSafeInt(value: number | string | bigint, column: string, engine: (message: string) => Error): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw engine(`messages.${column} value ${String(value)} is not a safe integer`);
  return n;
}
