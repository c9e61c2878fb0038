/**
 * The embedded engine set (no flags): everything in-process, permanent history on disk under `<dataDir>`:
 * SQLite in `<dataDir>/history.sqlite`, written by a worker thread (default), or PGlite in
 * `<dataDir>/history/` (`--embedded-store pglite`). The RoomLog is seeded from history, so after a restart
 * each room's seq continues under the same epoch and clients resume without a reset.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryBackplane, MemoryBus } from './backplane/memory.js';
import { MemoryDurableLog } from './durablelog/memory.js';
import type { Engines } from './engines.js';
import type { MessageStore } from './messagestore/messagestore.js';
import { openSqliteStore, SQLITE_FILE, type SqliteStoreOptions } from './messagestore/sqlite.js';
import { MemoryPresenceStore } from './presence/memory.js';
import { MemoryRevocationStore } from './revocations/memory.js';
import { MemoryRoomLog } from './roomlog/memory.js';

export type EmbeddedStoreKind = 'sqlite' | 'pglite';

export interface EmbeddedOptions {
  dataDir: string;
  /** The history store (default `sqlite`). */
  store?: EmbeddedStoreKind;
  /** Options of the SQLite store (tests). */
  sqlite?: Partial<SqliteStoreOptions>;
  presenceTtlMs: number;
  recoveryWindow: number;
  recoveryWindowMs: number;
  idempotencyMs: number;
  /** Share one bus between several nodes in one process (tests, local multi-node). */
  bus?: MemoryBus;
  /** Told about something the operator should know (the other store's data left in the data dir). */
  onNotice?: (message: string, details: Record<string, unknown>) => void;
}

/**
 * Opens the chosen store. Neither store reads the other's data: a data dir holding the other one's files is
 * used as it is (the files are left alone) and `onNotice` says so. PGlite is imported only when chosen (its
 * module alone costs a node tens of MB and hundreds of ms).
 */
export async function openEmbeddedStore(o: Pick<EmbeddedOptions, 'dataDir' | 'store' | 'sqlite' | 'onNotice'>): Promise<MessageStore> {
  const kind = o.store ?? 'sqlite';
  const inMemory = o.dataDir.startsWith('memory://');
  const other = kind === 'sqlite' ? join(o.dataDir, 'history', 'PG_VERSION') : join(o.dataDir, SQLITE_FILE);
  if (!inMemory && existsSync(other)) {
    o.onNotice?.(
      kind === 'sqlite'
        ? 'history from the PGlite store (the previous default) is in <data-dir>/history/ and is not read: history starts empty here. Start with --embedded-store pglite to keep using it, or delete that directory.'
        : 'history from the SQLite store is in <data-dir>/history.sqlite and is not read by the PGlite store.',
      { dataDir: o.dataDir, store: kind, ignored: other },
    );
  }
  if (kind === 'sqlite') return openSqliteStore(o.dataDir, o.sqlite);
  const { openPgliteStore } = await import('./messagestore/pglite.js');
  return openPgliteStore(o.dataDir);
}

export async function openEmbeddedEngines(o: EmbeddedOptions): Promise<Engines> {
  const store = await openEmbeddedStore(o);
  const roomLog = new MemoryRoomLog({
    windowSize: o.recoveryWindow,
    windowMs: o.recoveryWindowMs,
    idemMs: o.idempotencyMs,
    seed: (ref) => store.position(ref),
    // After a restart: the newest stored messages refill the recovery window and the idempotency records.
    seedRecent: async (ref) => (await store.page(ref, { limit: Math.min(o.recoveryWindow, 1000) })).messages,
  });
  return {
    backplane: new MemoryBackplane(o.bus ?? new MemoryBus()),
    presence: new MemoryPresenceStore({ ttlMs: o.presenceTtlMs }),
    roomLog,
    durableLog: new MemoryDurableLog(),
    store,
    revocations: new MemoryRevocationStore(),
  };
}
