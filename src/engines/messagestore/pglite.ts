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
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { migrate } from './migrations.js';
import type { SqlDriver, SqlExecutor, SqlParam } from './sql.js';
import { SqlMessageStore, type SqlMessageStoreOptions } from './sql-store.js';
import { EngineError } from '../errors.js';

export interface PgliteStoreOptions extends SqlMessageStoreOptions {
  /** PostgreSQL shared_buffers, MB (PGlite's own default is 128). Default 16. */
  sharedBuffersMb: number;
}

/** Data directories (resolved paths) held by stores open in this process. */
const heldLocks = new Set<string>();

/**
 * Opens (creating if needed) the store under `${dataDir}/history` and applies pending migrations.
 * `dataDir` `memory://` gives a throwaway in-memory store (tests). Only one store may use a directory at
 * a time: a lock file `${dataDir}/history.lock` holding the owner's pid makes a second opener, in this
 * or another live process, fail with "in use" instead of corrupting the database; a lock left by a dead
 * process is taken over.
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

/** Takes the directory lock at `path` (see openPgliteStore) and returns its release function. */
async function lockDataDir(path: string): Promise<() => Promise<void>> {
  if (heldLocks.has(path)) throw new EngineError('messagestore', 'in_use', `history store ${path} is already in use by this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, 'wx');
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new EngineError('messagestore', 'in_use', `history store ${path} is in use by process ${owner}`, { cause: error });
      }
      await rm(path, { force: true }); // stale: its owner is gone (or was an earlier run with our pid)
    }
  }
  heldLocks.add(path);
  return async () => {
    heldLocks.delete(path);
    await rm(path, { force: true });
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
