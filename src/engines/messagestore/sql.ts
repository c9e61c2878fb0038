/**
 * The smallest SQL surface the SQL MessageStore needs, so the same SQL runs on PGlite (embedded) and on
 * PostgreSQL through `pg` (cluster). Statements use PostgreSQL syntax with `$1..$n` placeholders.
 */

/** A parameter value. Numbers must be safe integers or finite floats; JSON goes in as text (`$n::text::jsonb`). */
export type SqlParam = string | number | bigint | boolean | null;

/** Runs statements on one connection (or inside one transaction). */
export interface SqlExecutor {
  /**
   * Runs one parameterised statement and returns its rows. Column values arrive as the driver parses
   * them: `bigint` may be a number (PGlite) or a string (`pg`), `jsonb` is parsed JSON, so callers convert.
   */
  query<T>(text: string, params?: readonly SqlParam[]): Promise<{ rows: T[] }>;
  /** Runs one or more statements without parameters (DDL, `SET`), discarding results. */
  exec(text: string): Promise<void>;
}

/**
 * A database handle.
 *
 * - `transaction(fn)` runs `fn` in BEGIN … COMMIT on a single connection, rolling back if `fn` rejects
 *   (the rejection is passed on). Inside `fn` use only the given executor: on a single-connection driver
 *   (PGlite) the handle's own `query` waits for the transaction to end, so calling it from `fn` deadlocks.
 * - Statements from concurrent callers never interleave with another caller's transaction.
 * - After `close()` every call rejects.
 */
export interface SqlDriver extends SqlExecutor {
  /** `'pglite'` or `'postgres'`; becomes the MessageStore's `kind`. */
  readonly kind: string;
  transaction<R>(fn: (tx: SqlExecutor) => Promise<R>): Promise<R>;
  close(): Promise<void>;
}

/** PostgreSQL's limit on bind parameters in one statement (the wire protocol counts them in an int16). */
export const MAX_BIND_PARAMS = 65_535;
