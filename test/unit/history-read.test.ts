/**
 * readHistory: the newest messages from the RoomLog window, the rest from the store — a real MemoryRoomLog
 * and a real (in-memory PGlite) SqlMessageStore where the store lags 10 messages behind the window.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgliteStore } from '../../src/engines/messagestore/pglite.js';
import type { SqlMessageStore } from '../../src/engines/messagestore/sql-store.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import type { RoomMessage } from '../../src/engines/types.js';
import { readHistory } from '../../src/messaging/history.js';

const ref = { tenant: 't', room: 'r' };
let store: SqlMessageStore;
const roomLog = new MemoryRoomLog({ windowSize: 10, windowMs: 600_000, idemMs: 600_000 });
const seqs = (ms: RoomMessage[]): number[] => ms.map((m) => m.seq);
const span = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

beforeAll(async () => {
  store = await openPgliteStore('memory://history-read');
  const all: RoomMessage[] = [];
  for (let i = 1; i <= 30; i++) all.push((await roomLog.append(ref, { from: 'u', data: i })).message);
  await store.insert(all.slice(0, 20)); // the writer lags: 21..30 are only in the window
}, 60_000);

afterAll(async () => {
  await store.close();
});

describe('readHistory', () => {
  it('newest page: store for the older part, window for the newest, contiguous', async () => {
    const page = await readHistory(roomLog, store, ref, { limit: 15 });
    expect(seqs(page.messages)).toEqual(span(16, 30));
    expect(page.more).toBe(true);
  });

  it('before pages inside the window, across the boundary, and below it', async () => {
    expect(seqs((await readHistory(roomLog, store, ref, { before: 29, limit: 5 })).messages)).toEqual(span(24, 28));
    expect(seqs((await readHistory(roomLog, store, ref, { before: 25, limit: 8 })).messages)).toEqual(span(17, 24));
    const low = await readHistory(roomLog, store, ref, { before: 4, limit: 10 });
    expect(seqs(low.messages)).toEqual([1, 2, 3]);
    expect(low.more).toBe(false);
  });

  it('after pages are topped up from the window', async () => {
    const page = await readHistory(roomLog, store, ref, { after: 15, limit: 10 });
    expect(seqs(page.messages)).toEqual(span(16, 25));
    expect(page.more).toBe(true);
    const end = await readHistory(roomLog, store, ref, { after: 25, limit: 10 });
    expect(seqs(end.messages)).toEqual(span(26, 30));
    expect(end.more).toBe(false);
  });

  it('a hole in the store (a writer batch not committed yet) is filled from the window', async () => {
    const holed = { tenant: 't', room: 'holed' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 10; i++) all.push((await roomLog.append(holed, { from: 'u', data: i })).message);
    await store.insert([...all.slice(0, 3), ...all.slice(6)]); // 4..6 missing
    const page = await readHistory(roomLog, store, holed, { after: 0, limit: 100 });
    expect(seqs(page.messages)).toEqual(span(1, 10));
    expect(page.messages.map((m) => m.data)).toEqual(span(1, 10));
    expect(page.more).toBe(false);
  });

  it('with the store down, the newest page still comes from the window; older pages reject', async () => {
    const down = await openPgliteStore('memory://history-read-down');
    await down.close();
    expect(seqs((await readHistory(roomLog, down, ref, { limit: 5 })).messages)).toEqual(span(26, 30));
    await expect(readHistory(roomLog, down, ref, { before: 10, limit: 5 })).rejects.toThrow();
  });

  it('a writer lagging by more than the window: a page across the missing seqs is refused, not served with a hole', async () => {
    const lagging = { tenant: 't', room: 'lagging' };
    const all: RoomMessage[] = [];
    for (let i = 1; i <= 40; i++) all.push((await roomLog.append(lagging, { from: 'u', data: i })).message);
    await store.insert(all.slice(0, 15)); // stored 1..15, window 31..40, 16..30 in neither yet
    expect(seqs((await readHistory(roomLog, store, lagging, { limit: 10 })).messages)).toEqual(span(31, 40));
    await expect(readHistory(roomLog, store, lagging, { before: 33, limit: 10 })).rejects.toMatchObject({ code: 'unavailable' });
    expect(seqs((await readHistory(roomLog, store, lagging, { before: 16, limit: 5 })).messages)).toEqual(span(11, 15));
    await store.insert(all.slice(15, 30)); // the writer caught up
    expect(seqs((await readHistory(roomLog, store, lagging, { before: 33, limit: 10 })).messages)).toEqual(span(23, 32));
  });
});
