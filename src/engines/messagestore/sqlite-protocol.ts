/**
 * The messages between the SQLite store (sqlite.ts, on the event loop) and its worker thread
 * (sqlite-worker.ts, which owns the database). Types only.
 */

/** What the worker is started with (`workerData`). */
export interface SqliteWorkerConfig {
  /** The database file, or `:memory:`. */
  readonly file: string;
  /** SQLite `synchronous` in WAL mode: FULL fsyncs every commit, NORMAL only at checkpoints. */
  readonly synchronous: 'FULL' | 'NORMAL';
}

/** A value of one column of `messages`. */
export type SqliteValue = string | number | null;

/** Columns of one row, in INSERT order: tenant, room, seq, epoch, sender, ts, data (JSON text), idem, event, mkey. */
export const SQLITE_COLUMNS = 10;

export type SqliteRequest =
  /** `rows`: SQLITE_COLUMNS values per row, rows one after another; stored in one transaction. */
  | { readonly id: number; readonly op: 'insert'; readonly rows: readonly SqliteValue[] }
  | {
      readonly id: number;
      readonly op: 'page';
      readonly tenant: string;
      readonly room: string;
      readonly before: number | null;
      readonly after: number | null;
      /** Rows to read (the caller asks one more than its page to learn `more`). */
      readonly limit: number;
    }
  | { readonly id: number; readonly op: 'position'; readonly tenant: string; readonly room: string }
  | { readonly id: number; readonly op: 'close' };

/** A page row: seq, epoch, sender, ts, data (JSON text), idem, event, mkey. */
export type SqlitePageRow = [number, string, string, number, string, string | null, string | null, string | null];

/** The worker's answer to request `id` (0: the answer to opening the database). */
export type SqliteReply =
  | { readonly id: number; readonly ok: true; readonly rows?: SqlitePageRow[]; readonly position?: [number, string] | null }
  | { readonly id: number; readonly ok: false; readonly error: { readonly name: string; readonly message: string; readonly code?: string } };
