/**
 * The embedded MessageStore: PGlite (PostgreSQL compiled to WASM, in this process) on disk, running the
 * same SQL as the cluster's PostgreSQL.
 *
 * Measured on the 2-core dev machine (Node 20, PGlite 0.5.16); RSS added by one store:
 * - first open of an empty directory (runs initdb in a second WASM instance): 3.4–3.7 s, RSS peak
 *   +660–750 MB, settling at +250–280 MB after GC (PGlite does not give all of initdb's memory back);
 * - reopening an existing directory: 0.4–0.6 s, +110–135 MB with the 16 MB shared_buffers used here,
 *   against 0.5–0.9 s and +240–260 MB with PGlite's default 128 MB; after 100k messages (94 MB on
 *   disk) +150–175 MB against +300–315 MB. Insert throughput (500-row batches) 16–20k msg/s against
 *   20–22k; a 50-message page ~3 ms; `position` ~0.5 ms.
 * The WASM heap starts at 128 MB and cannot start smaller (`initialMemory` below that fails to link);
 * shared_buffers decides how much of it gets touched. History reads are mostly a room's newest pages and
 * the OS page cache holds the files anyway, so the small buffer pool costs little.
 *
 * PGlite runs synchronously on the calling thread: every statement blocks the event loop for its
 * duration (a 500-row insert ~25–40 ms, a page ~3–10 ms).
 *
 * Durability: PGlite runs with fsync off (its default `-F`; the WASM file system has no fsync either),
 * so a committed row survives a process crash (it is in the kernel's page cache) but not a power loss.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { migrate } from './migrations.js';
import type { SqlDriver, SqlExecutor, SqlParam } from './sql.js';
import { SqlMessageStore, type SqlMessageStoreOptions } from './sql-store.js';
import { lockDataDir } from './data-dir-lock.js';

export interface PgliteStoreOptions extends SqlMessageStoreOptions {
  /** PostgreSQL shared_buffers, MB (PGlite's own default is 128). Default 16. */
  sharedBuffersMb: number;
}

/**
 * Opens (creating if needed) the store under `${dataDir}/history` and applies pending migrations.
 * `dataDir` `memory://` gives a throwaway in-memory store (tests). Only one store may use a directory at
 * a time (`${dataDir}/history.lock`, see data-dir-lock.ts).
 */
export async function openPgliteStore(dataDir: string, options: Partial<PgliteStoreOptions> = {}): Promise<SqlMessageStore> {
  const sharedBuffersMb = options.sharedBuffersMb ?? 16;
  if (!Number.isInteger(sharedBuffersMb) || sharedBuffersMb < 1) throw new RangeError('sharedBuffersMb must be a positive integer');
  const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffersMb}MB`];
  const inMemory = dataDir.startsWith('memory://');
  let release = async (): Promise<void> => undefined;
  let db: PGlite;
  if (inMemory) {
    db = await PGlite.create({ startParams });
  } else {
    const dir = join(dataDir, 'history');
    await mkdir(dir, { recursive: true });
    release = await lockDataDir(resolve(dataDir, 'history.lock'));
    try {
      db = await PGlite.create({ fs: new NodeFS(dir), startParams });
    } catch (error) {
      await release();
      throw error;
    }
  }
  const driver = new PgliteDriver(db, release);
  try {
    await migrate(driver);
  } catch (error) {
    await driver.close();
    throw error;
  }
  return new SqlMessageStore(driver, options);
}

/**
 * SqlDriver over one PGlite instance. PGlite is a single connection and serialises work itself: a
 * `query` issued while a transaction runs waits until it commits or rolls back, so statements of
 * concurrent callers never run inside someone else's transaction.
 */
export class PgliteDriver implements SqlDriver {
  readonly kind = 'pglite';
  private closing: Promise<void> | undefined;

  constructor(
    private readonly db: PGlite,
    private readonly onClosed: () => Promise<void> = async () => undefined,
  ) {}

  async query<T>(text: string, params: readonly SqlParam[] = []): Promise<{ rows: T[] }> {
    const result = await this.db.query<T>(text, [...params]);
    return { rows: result.rows };
  }

  async exec(text: string): Promise<void> {
    await this.db.exec(text);
  }

  transaction<R>(fn: (tx: SqlExecutor) => Promise<R>): Promise<R> {
    return this.db.transaction((tx) => fn(new PgliteTransaction(tx)));
  }

  /** Closes the database (checkpointing it) and releases the directory lock; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.db.closed) await this.db.close();
      } finally {
        await this.onClosed();
      }
    })();
    return this.closing;
  }
}

class PgliteTransaction implements SqlExecutor {
  constructor(private readonly tx: Transaction) {}

  async query<T>(text: string, params: readonly SqlParam[] = []): Promise<{ rows: T[] }> {
    const result = await this.tx.query<T>(text, [...params]);
    return { rows: result.rows };
  }

  async exec(text: string): Promise<void> {
    await this.tx.exec(text);
  }
}
