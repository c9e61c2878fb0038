/**
 * readHistory: the newest messages from the RoomLog window, the rest from the store — a real MemoryRoomLog
 * and a real (in-memory SQLite, the embedded default) store where the store lags 10 messages behind the window — and
 * holes in the store: filled from the durable log's uncommitted messages, skipped when never acked,
 * refused `unavailable` while they may still be in flight or the durable log does not answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { openSqliteStore } from '../../src/engines/messagestore/sqlite.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import type { RoomMessage } from '../../src/engines/types.js';
import type { HoleFilling, HoleResult } from '../../src/messaging/history-fill.js';
import { readHistory } from '../../src/messaging/history.js';
import { sqliteWorkerUrl } from '../helpers/sqlite-worker.js';

const ref = { tenant: 't', room: 'r' };
let store: MessageStore;
const openStore = async (name: string): Promise<MessageStore> => openSqliteStore(`memory://${name}`, { workerUrl: await sqliteWorkerUrl() });
const roomLog = new MemoryRoomLog({ windowSize: 10, windowMs: 600_000, idemMs: 600_000 });
const seqs = (ms: RoomMessage[]): number[] => ms.map((m) => m.seq);
const span = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const SETTLE_MS = 60_000;
const holes: HoleResult[] = [];
/** The store with a durable log holding nothing uncommitted, unless given. */
const with_ = (s: MessageStore, durableLog = new MemoryDurableLog(), extra: Partial<HoleFilling> = {}): HoleFilling => ({
  store: s,
  durableLog,
  settleMs: SETTLE_MS,
  onHole: (_ref, result) => holes.push(result),
  ...extra,
});

beforeAll(async () => {
  store = await openStore('history-read');
  const all: RoomMessage[] = [];
  for (let i = 1; i <= 30; i++) all.push((await roomLog.append(ref, { from: 'u', data: i })).message);
  await store.insert(all.slice(0, 20)); // the writer lags: 21..30 are only in the window
}, 60_000);

afterAll(async () => {
  await store.close();
});

describe('readHistory', () => {
  it('newest page: store for the older part, window for the newest, contiguous', async () => {
    const page = await readHistory(roomLog, with_(store), ref, { limit: 15 });
    expect(seqs(page.messages)).toEqual(span(16, 30));
    expect(page.more).toBe(true);
  });

  it('before pages inside the window, across the boundary, and below it', async () => {
    expect(seqs((await readHistory(roomLog, with_(store), ref, { before: 29, limit: 5 })).messages)).toEqual(span(24, 28));
    expect(seqs((await readHistory(roomLog, with_(store), ref, { before: 25, limit: 8 })).messages)).toEqual(span(17, 24));
    const low = await readHistory(roomLog, with_(store), ref, { before: 4, limit: 10 });
    expect(seqs(low.messages)).toEqual([1, 2, 3]);
    expect(low.more).toBe(false);
  });

  it('after pages are topped up from the window', async () => {
    const page = await readHistory(roomLog, with_(store), ref, { after: 15, limit: 10 });
    expect(seqs(page.messages)).toEqual(span(16, 25));
    expect(page.more).toBe(true);
    const end = await readHistory(roomLog, with_(store), ref, { after: 25, limit: 10 });
    expect(seqs(end.messages)).toEqual(span(26, 30));
    expect(end.more).toBe(false);
  });

  it("a hole in the store below the window is filled from the durable log (a killed writer's batch)", async () => {
    const killed = { tenant: 't', room: 'killed' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 60; i++) all.push((await roomLog.append(killed, { from: 'u', data: i })).message);
    await store.insert([...all.slice(0, 20), ...all.slice(25)]); // 21..25 held by a killed writer
    const durable = new MemoryDurableLog();
    for (const m of all.slice(20, 25)) durable.append(m).catch(() => undefined);
    holes.length = 0;
    const page = await readHistory(roomLog, with_(store, durable), killed, { before: 40, limit: 30 });
    expect(seqs(page.messages)).toEqual(span(10, 39));
    expect(page.messages.map((m) => m.data)).toEqual(span(10, 39));
    expect(page.more).toBe(true);
    const forward = await readHistory(roomLog, with_(store, durable), killed, { after: 15, limit: 20 });
    expect(seqs(forward.messages)).toEqual(span(16, 35));
    // Without the durable log's answer the same pages are refused, never served with a hole.
    const failing = new MemoryDurableLog();
    await failing.close();
    await expect(readHistory(roomLog, with_(store, failing), killed, { before: 40, limit: 30 })).rejects.toMatchObject({ code: 'unavailable' });
    await expect(readHistory(roomLog, with_(store, failing), killed, { after: 15, limit: 20 })).rejects.toMatchObject({ code: 'unavailable' });
    // Found nowhere, and the next message is recent: the publish may still be in flight.
    await expect(readHistory(roomLog, with_(store), killed, { before: 40, limit: 30 })).rejects.toMatchObject({ code: 'unavailable' });
    expect(holes).toEqual(['filled', 'filled', 'unavailable', 'unavailable', 'unavailable']);
    await durable.close();
  });

  it('seqs that were never acked (found nowhere, older than the settle time) are skipped, and only those', async () => {
    const failed = { tenant: 't', room: 'failed' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 60; i++) all.push((await roomLog.append(failed, { from: 'u', data: i })).message);
    await store.insert(all.filter((m) => m.seq !== 30 && m.seq !== 1)); // 1 and 30: publishes that failed
    const settled = with_(store, new MemoryDurableLog(), { settleMs: 0 });
    const page = await readHistory(roomLog, settled, failed, { before: 41, limit: 20 });
    expect(seqs(page.messages)).toEqual([...span(21, 29), ...span(31, 40)]);
    expect(page.more).toBe(true);
    const oldest = await readHistory(roomLog, settled, failed, { before: 5, limit: 10 });
    expect(seqs(oldest.messages)).toEqual([2, 3, 4]);
    expect(oldest.more).toBe(false);
  });

  it("the bottom of history and the store's top below the RoomLog position are checked as well", async () => {
    const edges = { tenant: 't', room: 'edges' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 40; i++) all.push((await roomLog.append(edges, { from: 'u', data: i })).message);
    await store.insert(all.slice(3, 25)); // 1..3 and 26..30 not stored yet; the window has 31..40
    const durable = new MemoryDurableLog();
    for (const m of [...all.slice(0, 3), ...all.slice(25, 30)]) durable.append(m).catch(() => undefined);
    const first = await readHistory(roomLog, with_(store, durable), edges, { before: 10, limit: 20 });
    expect(seqs(first.messages)).toEqual(span(1, 9));
    expect(first.more).toBe(false);
    const top = await readHistory(roomLog, with_(store, durable), edges, { after: 20, limit: 15 });
    expect(seqs(top.messages)).toEqual(span(21, 35));
    await expect(readHistory(roomLog, with_(store), edges, { before: 10, limit: 20 })).rejects.toMatchObject({ code: 'unavailable' });
    expect(seqs((await readHistory(roomLog, with_(store), edges, { before: 10, limit: 5 })).messages)).toEqual(span(5, 9)); // rows below: not the bottom
    await durable.close();
  });

  it('a hole in the store (a writer batch not committed yet) is filled from the window', async () => {
    const holed = { tenant: 't', room: 'holed' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 10; i++) all.push((await roomLog.append(holed, { from: 'u', data: i })).message);
    await store.insert([...all.slice(0, 3), ...all.slice(6)]); // 4..6 missing
    const page = await readHistory(roomLog, with_(store), holed, { after: 0, limit: 100 });
    expect(seqs(page.messages)).toEqual(span(1, 10));
    expect(page.messages.map((m) => m.data)).toEqual(span(1, 10));
    expect(page.more).toBe(false);
  });

  it('with the store down, the newest page still comes from the window; older pages reject', async () => {
    const down = await openStore('history-read-down');
    await down.close();
    expect(seqs((await readHistory(roomLog, with_(down), ref, { limit: 5 })).messages)).toEqual(span(26, 30));
    await expect(readHistory(roomLog, with_(down), ref, { before: 10, limit: 5 })).rejects.toThrow();
  });

  it('a writer lagging by more than the window: a page across the missing seqs is refused, not served with a hole', async () => {
    const lagging = { tenant: 't', room: 'lagging' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 40; i++) all.push((await roomLog.append(lagging, { from: 'u', data: i })).message);
    await store.insert(all.slice(0, 15)); // stored 1..15, window 31..40, 16..30 in neither yet
    expect(seqs((await readHistory(roomLog, with_(store), lagging, { limit: 10 })).messages)).toEqual(span(31, 40));
    await expect(readHistory(roomLog, with_(store), lagging, { before: 33, limit: 10 })).rejects.toMatchObject({ code: 'unavailable' });
    expect(seqs((await readHistory(roomLog, with_(store), lagging, { before: 16, limit: 5 })).messages)).toEqual(span(11, 15));
    await store.insert(all.slice(15, 30)); // the writer caught up
    expect(seqs((await readHistory(roomLog, with_(store), lagging, { before: 33, limit: 10 })).messages)).toEqual(span(23, 32));
  });
});
