/**
 * recover(): window-complete recovery, store fallback beyond the window, resets for gap/epoch/ahead,
 * and the invariant that recovered messages are exactly since+1..position in order.
 *
 * Holes in the store are filled from the durable log; seqs found nowhere make a reset, or `unavailable`
 * while a later message is younger than the settle time.
 *
 * RoomLog: the real MemoryRoomLog with a small window. MessageStore: the real SQLite store (the embedded
 * default, `memory://`), the real PGlite store
 * (src/engines/messagestore/pglite.ts, `openPgliteStore('memory://')`) when that file exists, and
 * always a small in-test store that follows the MessageStore contract, so the recovery logic is
 * covered before the PGlite store lands.
 */
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryPage, HistoryQuery, MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import { openSqliteStore } from '../../src/engines/messagestore/sqlite.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import { roomKey, type RoomMessage, type RoomRef } from '../../src/engines/types.js';
import type { HoleFilling } from '../../src/messaging/history-fill.js';
import { recover, type RecoveryOutcome } from '../../src/messaging/recovery.js';
import { sqliteWorkerUrl } from '../helpers/sqlite-worker.js';

const WINDOW = 5;

/** An empty durable log: the store's holes are seqs that were never acked (settled at once). */
const filling = (store: MessageStore, durableLog = new MemoryDurableLog(), settleMs = 0): HoleFilling => ({ store, durableLog, settleMs });

/** A minimal MessageStore following the contract in messagestore.ts (ascending pages, idempotent insert). */
class ArrayMessageStore implements MessageStore {
  readonly kind = 'array';
  readonly rooms = new Map<string, RoomMessage[]>();
  pageCalls = 0;

  async insert(batch: readonly RoomMessage[]): Promise<void> {
    for (const m of batch) {
      const key = roomKey(m);
      const list = this.rooms.get(key) ?? [];
      if (!list.some((x) => x.seq === m.seq)) list.push(m);
      this.rooms.set(key, list);
    }
    for (const list of this.rooms.values()) list.sort((a, b) => a.seq - b.seq);
  }

  async page(ref: RoomRef, q: HistoryQuery): Promise<HistoryPage> {
    this.pageCalls++;
    const all = this.rooms.get(roomKey(ref)) ?? [];
    if (q.after !== undefined) {
      const above = all.filter((m) => m.seq > q.after!);
      return { messages: above.slice(0, q.limit), more: above.length > q.limit };
    }
    const below = q.before !== undefined ? all.filter((m) => m.seq < q.before!) : all;
    return { messages: below.slice(Math.max(0, below.length - q.limit)), more: below.length > q.limit };
  }

  async position(ref: RoomRef) {
    const last = this.rooms.get(roomKey(ref))?.at(-1);
    return last === undefined ? null : { seq: last.seq, epoch: last.epoch };
  }

  health() {
    return { ok: true };
  }

  async close(): Promise<void> {}
}

interface StoreVariant {
  readonly name: string;
  readonly available: boolean;
  open(): Promise<MessageStore>;
}

const pgliteUrl = new URL('../../src/engines/messagestore/pglite.ts', import.meta.url);
const pgliteModule = '../../src/engines/messagestore/pglite.js';

const variants: StoreVariant[] = [
  { name: 'in-test array store', available: true, open: async () => new ArrayMessageStore() },
  {
    name: 'SQLite store (the embedded default)',
    available: true,
    open: async () => openSqliteStore('memory://', { workerUrl: await sqliteWorkerUrl() }),
  },
  {
    name: 'PGlite store',
    available: existsSync(pgliteUrl),
    open: async () => {
      // Imported by a computed specifier so this file type-checks before pglite.ts exists.
      const mod = (await import(/* @vite-ignore */ pgliteModule)) as { openPgliteStore(dir: string): Promise<MessageStore> };
      return mod.openPgliteStore('memory://');
    },
  },
];

let roomCounter = 0;

for (const variant of variants) {
  describe.skipIf(!variant.available)(`recover with MemoryRoomLog + ${variant.name}`, () => {
    let store: MessageStore;
    let log: MemoryRoomLog;
    let ref: RoomRef;

    beforeAll(async () => {
      store = await variant.open();
    });
    afterAll(async () => {
      await store.close();
    });
    afterEach(async () => {
      await log.close();
    });

    /** A fresh room with `n` messages appended to the RoomLog and (optionally only some) stored in history. */
    async function room(n: number, options: { windowSize?: number; store?: (m: RoomMessage) => boolean } = {}) {
      log = new MemoryRoomLog({ windowSize: options.windowSize ?? WINDOW, sweepMs: 3_600_000 });
      ref = { tenant: 'acme', room: `room-${++roomCounter}` };
      const all: RoomMessage[] = [];
      for (let i = 1; i <= n; i++) all.push((await log.append(ref, { from: 'alice', data: { i } })).message);
      const keep = options.store ?? (() => true);
      const stored = all.filter(keep);
      for (let i = 0; i < stored.length; i += 500) await store.insert(stored.slice(i, i + 500));
      const epoch = all[0]?.epoch ?? (await log.position(ref)).epoch;
      return { all, epoch };
    }

    const seqs = (o: RecoveryOutcome): number[] => (o.kind === 'recovered' ? o.messages.map((m) => m.seq) : []);
    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    it('recovers from the window when it holds everything after since', async () => {
      const { all, epoch } = await room(20); // window holds 16..20
      const o = await recover(log, filling(store), ref, { seq: 17, epoch }, 100);
      expect(o).toMatchObject({ kind: 'recovered', source: 'window', position: { seq: 20, epoch } });
      expect(seqs(o)).toEqual([18, 19, 20]);
      if (o.kind === 'recovered') expect(o.messages).toEqual(all.slice(17));
      // The window's first message is exactly since+1: still complete.
      const edge = await recover(log, filling(store), ref, { seq: 15, epoch }, 100);
      expect(edge).toMatchObject({ kind: 'recovered', source: 'window' });
      expect(seqs(edge)).toEqual(range(16, 20));
    });

    it('recovers nothing when the client is up to date', async () => {
      const { epoch } = await room(8);
      const o = await recover(log, filling(store), ref, { seq: 8, epoch }, 100);
      expect(o).toEqual({ kind: 'recovered', source: 'window', messages: [], position: { seq: 8, epoch } });
    });

    it('reads the part older than the window from the store', async () => {
      const { all, epoch } = await room(20);
      const o = await recover(log, filling(store), ref, { seq: 3, epoch }, 100);
      expect(o).toMatchObject({ kind: 'recovered', source: 'store', position: { seq: 20, epoch } });
      expect(seqs(o)).toEqual(range(4, 20));
      if (o.kind === 'recovered') expect(o.messages.map((m) => m.data)).toEqual(all.slice(3).map((m) => m.data));
    });

    it('recovers from the very beginning (since 0)', async () => {
      const { epoch } = await room(12);
      const o = await recover(log, filling(store), ref, { seq: 0, epoch }, 100);
      expect(o).toMatchObject({ kind: 'recovered', source: 'store' });
      expect(seqs(o)).toEqual(range(1, 12));
    });

    it('pages through the store when the gap is longer than one page (1000)', async () => {
      const { epoch } = await room(2_600, { windowSize: 10 });
      const calls = store instanceof ArrayMessageStore ? store.pageCalls : 0;
      const o = await recover(log, filling(store), ref, { seq: 100, epoch }, 10_000);
      expect(o).toMatchObject({ kind: 'recovered', source: 'store', position: { seq: 2_600, epoch } });
      expect(seqs(o)).toEqual(range(101, 2_600));
      if (store instanceof ArrayMessageStore) expect(store.pageCalls - calls).toBe(3);
    });

    it('resets with reason "gap" when the gap exceeds maxGap (and not at exactly maxGap)', async () => {
      const { epoch } = await room(20);
      // Gap from seq 3 to position 20 is 17.
      expect(await recover(log, filling(store), ref, { seq: 3, epoch }, 16)).toEqual({ kind: 'reset', reason: 'gap', position: { seq: 20, epoch } });
      const atLimit = await recover(log, filling(store), ref, { seq: 3, epoch }, 17);
      expect(atLimit.kind).toBe('recovered');
      expect(seqs(atLimit)).toEqual(range(4, 20));
    });

    it('window recovery is bounded by maxGap too (a bigger gap resets rather than flood the client)', async () => {
      const { epoch } = await room(20, { windowSize: 50 });
      const o = await recover(log, filling(store), ref, { seq: 2, epoch }, 5);
      expect(o).toEqual({ kind: 'reset', reason: 'gap', position: { seq: 20, epoch } });
      const within = await recover(log, filling(store), ref, { seq: 15, epoch }, 5);
      expect(within).toMatchObject({ kind: 'recovered', source: 'window' });
      expect(seqs(within)).toEqual(range(16, 20));
    });

    it('resets with reason "gap" rather than return a partial run when history misses messages', async () => {
      const { epoch } = await room(20, { store: (m) => m.seq !== 9 }); // history lacks seq 9
      const o = await recover(log, filling(store), ref, { seq: 3, epoch }, 100);
      expect(o).toEqual({ kind: 'reset', reason: 'gap', position: { seq: 20, epoch } });
      // Since after the hole: recoverable again.
      const after = await recover(log, filling(store), ref, { seq: 9, epoch }, 100);
      expect(seqs(after)).toEqual(range(10, 20));
    });

    it('fills a hole in history from the durable log (a writer batch not committed yet)', async () => {
      const { all, epoch } = await room(20, { store: (m) => m.seq < 7 || m.seq > 9 }); // 7..9 not stored yet
      const durable = new MemoryDurableLog();
      for (const m of all.slice(6, 9)) durable.append(m).catch(() => undefined); // pending: appended, not committed
      const o = await recover(log, filling(store, durable), ref, { seq: 3, epoch }, 100);
      expect(o).toMatchObject({ kind: 'recovered', source: 'store' });
      expect(seqs(o)).toEqual(range(4, 20));
      await durable.close();
    });

    it('a seq found nowhere while a later message is recent may still be in flight: unavailable, not a reset', async () => {
      const { epoch } = await room(20, { store: (m) => m.seq !== 9 });
      await expect(recover(log, filling(store, new MemoryDurableLog(), 60_000), ref, { seq: 3, epoch }, 100)).rejects.toMatchObject({ code: 'unavailable' });
    });

    it('resets with reason "gap" when history has not caught up with the window', async () => {
      const { epoch } = await room(20, { store: (m) => m.seq <= 10 }); // window 16..20, history 1..10
      const o = await recover(log, filling(store), ref, { seq: 3, epoch }, 100);
      expect(o).toEqual({ kind: 'reset', reason: 'gap', position: { seq: 20, epoch } });
    });

    it('resets with reason "epoch" when the epoch differs', async () => {
      const { epoch } = await room(20);
      for (const seq of [0, 3, 18, 20, 25]) {
        expect(await recover(log, filling(store), ref, { seq, epoch: 'not-the-epoch' }, 100)).toEqual({
          kind: 'reset',
          reason: 'epoch',
          position: { seq: 20, epoch },
        });
      }
    });

    it('resets with reason "ahead" when since is past the position', async () => {
      const { epoch } = await room(20);
      expect(await recover(log, filling(store), ref, { seq: 21, epoch }, 100)).toEqual({ kind: 'reset', reason: 'ahead', position: { seq: 20, epoch } });
      expect(await recover(log, filling(store), ref, { seq: 1_000_000, epoch }, 100)).toMatchObject({ kind: 'reset', reason: 'ahead' });
    });

    it('returns exactly since+1..position in order for every since', async () => {
      const { all, epoch } = await room(30, { windowSize: 7 });
      for (let since = 0; since <= 30; since++) {
        const o = await recover(log, filling(store), ref, { seq: since, epoch }, 1_000);
        expect(o.kind, `since ${since}`).toBe('recovered');
        if (o.kind !== 'recovered') continue;
        expect(o.source, `since ${since}`).toBe(since >= 30 - 7 ? 'window' : 'store');
        expect(
          o.messages.map((m) => m.seq),
          `since ${since}`,
        ).toEqual(range(since + 1, 30));
        expect(o.messages.every((m) => m.epoch === epoch && m.room === ref.room && m.tenant === ref.tenant)).toBe(true);
        expect(o.messages.map((m) => m.data)).toEqual(all.slice(since).map((m) => m.data));
      }
    });

    it('only returns messages of the requested room and tenant', async () => {
      const { epoch } = await room(10);
      const other: RoomRef = { tenant: 'other', room: ref.room };
      const otherLog = new MemoryRoomLog({ windowSize: WINDOW, sweepMs: 3_600_000 });
      const foreign: RoomMessage[] = [];
      for (let i = 0; i < 10; i++) foreign.push((await otherLog.append(other, { from: 'mallory', data: 'x' })).message);
      await otherLog.close();
      await store.insert(foreign.map((m) => ({ ...m, epoch })));
      const o = await recover(log, filling(store), ref, { seq: 0, epoch }, 100);
      expect(seqs(o)).toEqual(range(1, 10));
      if (o.kind === 'recovered') expect(o.messages.every((m) => m.tenant === 'acme' && m.from === 'alice')).toBe(true);
    });
  });
}
