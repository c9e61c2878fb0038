/**
 * Versioned schema migrations for the SQL MessageStore (PGlite and PostgreSQL share them).
 *
 * Each migration runs at most once, in its own transaction together with its row in
 * `schema_migrations`, so a crash mid-migration leaves the schema at the previous version. Several
 * nodes starting at once against one PostgreSQL are serialised by a transaction-scoped advisory lock;
 * a node that waited re-checks the version and skips what another node applied.
 *
 * Migrations are append-only: never edit one that has shipped, add the next version instead.
 */
import type { SqlDriver } from './sql.js';
import { EngineError } from '../errors.js';

export interface Migration {
  /** 1, 2, 3 …: applied in ascending order. */
  readonly version: number;
  readonly name: string;
  /** One or more statements (no parameters). */
  readonly sql: string;
}

/**
 * Migration 1, `messages`:
 * - `ts` is `bigint` milliseconds since the Unix epoch, exactly `RoomMessage.ts`: no time-zone or
 *   precision conversion and the same value through every driver (`to_timestamp(ts / 1000.0)` for humans).
 * - `sender` holds `RoomMessage.from` (`from` is a reserved word).
 * - The primary key (tenant, room, seq) is the only index: its B-tree serves the newest page, `before`
 *   and `after` pages and `position` (ORDER BY seq DESC LIMIT 1) as range scans, and is the conflict
 *   target that makes inserts idempotent.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'messages',
    sql: `
      CREATE TABLE messages (
        tenant text   NOT NULL,
        room   text   NOT NULL,
        seq    bigint NOT NULL,
        epoch  text   NOT NULL,
        sender text   NOT NULL,
        ts     bigint NOT NULL,
        data   jsonb  NOT NULL,
        idem   text   NULL,
        PRIMARY KEY (tenant, room, seq)
      );`,
  },
  /** Migration 2: `RoomMessage.event`, NULL for messages without one (and every message stored before). */
  { version: 2, name: 'messages.event', sql: 'ALTER TABLE messages ADD COLUMN event text NULL' },
  /** Migration 3: `RoomMessage.key` (the conflation key) as `mkey`, NULL for messages without one (and every message stored before). */
  { version: 3, name: 'messages.mkey', sql: 'ALTER TABLE messages ADD COLUMN mkey text NULL' },
];

/** Arbitrary constant naming Switchboard's migration lock in `pg_advisory_xact_lock`. */
const MIGRATION_LOCK = 0x53_42_4d_47; // "SBMG"

/**
 * Brings the schema up to the last of `migrations` and returns the versions applied by this call
 * (empty when already current). Rejects, leaving later migrations unapplied, if one fails.
 */
export async function migrate(driver: SqlDriver, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  ordered.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version < 1 || (i > 0 && ordered[i - 1]!.version === m.version)) {
      throw new EngineError('messagestore', 'invalid', `invalid migration version ${m.version} (${m.name})`);
    }
  });
  const current = await appliedVersions(driver);
  const applied: number[] = [];
  for (const m of ordered) {
    if (current.has(m.version)) continue;
    const ran = await driver.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const seen = await tx.query<{ n: number }>('SELECT 1 AS n FROM schema_migrations WHERE version = $1', [m.version]);
      if (seen.rows.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
      return true;
    });
    if (ran) applied.push(m.version);
  }
  return applied;
}

/** Versions recorded in `schema_migrations`; empty when the table does not exist yet. */
export async function appliedVersions(driver: SqlDriver): Promise<Set<number>> {
  const exists = await driver.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (exists.rows[0]?.t == null) return new Set();
  const rows = await driver.query<{ version: number | string }>('SELECT version FROM schema_migrations');
  return new Set(rows.rows.map((r) => Number(r.version)));
}
