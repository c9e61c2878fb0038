/**
 * The embedded engine set (no flags): everything in-process, permanent history in PGlite on disk under
 * `<dataDir>/history`. The RoomLog is seeded from history, so after a restart each room's seq continues
 * under the same epoch and clients resume without a reset.
 */
import { MemoryBackplane, MemoryBus } from './backplane/memory.js';
import { MemoryDurableLog } from './durablelog/memory.js';
import type { Engines } from './engines.js';
import { openPgliteStore } from './messagestore/pglite.js';
import { MemoryPresenceStore } from './presence/memory.js';
import { MemoryRevocationStore } from './revocations/memory.js';
import { MemoryRoomLog } from './roomlog/memory.js';

export interface EmbeddedOptions {
  dataDir: string;
  presenceTtlMs: number;
  recoveryWindow: number;
  recoveryWindowMs: number;
  idempotencyMs: number;
  /** Share one bus between several nodes in one process (tests, local multi-node). */
  bus?: MemoryBus;
}

export async function openEmbeddedEngines(o: EmbeddedOptions): Promise<Engines> {
  const store = await openPgliteStore(o.dataDir);
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
