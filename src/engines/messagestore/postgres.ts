/**
 * PostgreSQL (cluster) history: the same SqlMessageStore and migrations as the embedded PGlite store,
 * over a `pg` connection pool. Migrations take an advisory lock, so nodes starting together apply each
 * version once.
 */
import pg from 'pg';
import { migrate } from './migrations.js';
import type { SqlDriver, SqlExecutor, SqlParam } from './sql.js';
import { SqlMessageStore, type SqlMessageStoreOptions } from './sql-store.js';
import { EngineError } from '../errors.js';

export interface PostgresStoreOptions extends Partial<SqlMessageStoreOptions> {
  /** Pool size (default 10). */
  maxConnections?: number;
  /** Fail start-up when the database cannot be reached within this long (ms, default 5000). */
  connectTimeoutMs?: number;
}

export class PostgresDriver implements SqlDriver {
  readonly kind = 'postgres';

  constructor(private readonly pool: pg.Pool) {}

  async query<T>(text: string, params: readonly SqlParam[] = []): Promise<{ rows: T[] }> {
    const r = await this.pool.query(text, params as unknown[]);
    return { rows: r.rows as T[] };
  }

  async exec(text: string): Promise<void> {
    await this.pool.query(text);
  }

  async transaction<R>(fn: (tx: SqlExecutor) => Promise<R>): Promise<R> {
    const client = await this.pool.connect();
    const tx: SqlExecutor = {
      query: async <T>(text: string, params: readonly SqlParam[] = []) => ({ rows: (await client.query(text, params as unknown[])).rows as T[] }),
      exec: async (text: string) => {
        await client.query(text);
      },
    };
    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Opens the pool, checks the database answers, runs migrations. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<SqlMessageStore> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', () => undefined); // idle-client errors surface on the next query, not as crashes
  const driver = new PostgresDriver(pool);
  try {
    await driver.query('SELECT 1');
    await migrate(driver);
  } catch (err) {
    await pool.end().catch(() => undefined);
    const where = (() => {
      try {
        const u = new URL(url);
        return `${u.host}${u.pathname}`;
      } catch {
        return '[unparsable URL]';
      }
    })();
    throw new EngineError('messagestore', 'unavailable', `postgresql unreachable or not usable at ${where}: ${(err as Error).message}`, { cause: err });
  }
  return new SqlMessageStore(driver, options);
}
