/**
 * The SQLite MessageStore's schema and its versioned migrations, recorded in `PRAGMA user_version`.
 *
 * Each migration runs at most once, in one transaction with the new user_version, so a crash mid-migration
 * leaves the schema at the previous version. Append-only: never edit one that has shipped.
 */
import type BetterSqlite3 from 'better-sqlite3';

export interface SqliteMigration {
  /** 1, 2, 3 …: applied in ascending order. */
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * Migration 1, `messages` (the columns of the PostgreSQL schema, migrations.ts):
 * - `data` is the message's JSON text as JSON.stringify wrote it, so it reads back exactly (no jsonb
 *   rewriting: U+0000, lone surrogates and key order survive).
 * - `ts` is integer milliseconds since the Unix epoch; `sender` holds `RoomMessage.from`.
 * - WITHOUT ROWID: rows live in the primary key's B-tree, ordered by (tenant, room, seq), so a page and
 *   `position` are one range scan, and the key is the conflict target that makes inserts idempotent.
 */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'messages',
    sql: `
      CREATE TABLE messages (
        tenant TEXT    NOT NULL,
        room   TEXT    NOT NULL,
        seq    INTEGER NOT NULL,
        epoch  TEXT    NOT NULL,
        sender TEXT    NOT NULL,
        ts     INTEGER NOT NULL,
        data   TEXT    NOT NULL,
        idem   TEXT    NULL,
        event  TEXT    NULL,
        PRIMARY KEY (tenant, room, seq)
      ) WITHOUT ROWID;`,
  },
  /** Migration 2: `RoomMessage.key` (the conflation key) as `mkey`, NULL for messages without one. */
  { version: 2, name: 'messages.mkey', sql: 'ALTER TABLE messages ADD COLUMN mkey TEXT NULL' },
];

/** Brings the schema up to the last migration; returns the versions applied by this call. */
export function migrateSqlite(db: BetterSqlite3.Database, migrations: readonly SqliteMigration[] = SQLITE_MIGRATIONS): number[] {
  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const current = db.pragma('user_version', { simple: true }) as number;
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${Math.trunc(m.version)}`);
    }).immediate();
    applied.push(m.version);
  }
  return applied;
}
