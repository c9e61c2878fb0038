import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import type { Json, RoomMessage, RoomRef } from '../../src/engines/types.js';

/** What a MessageStore implementation provides to the conformance suite. */
export interface MessageStoreHarness {
  /** An open store. It need not be empty: every test writes to rooms of its own. */
  readonly store: MessageStore;
  /**
   * Closes the store last returned (by the harness or a previous `reopen`) and opens a new one on the
   * same storage. Omit for stores without persistent storage; the survival test is then skipped.
   */
  readonly reopen?: () => Promise<MessageStore>;
  /** Closes the current store and drops its storage. */
  cleanup(): Promise<void>;
}

const TS0 = 1_700_000_000_000;

/**
 * A harness for a store kept in a directory: opens it on a fresh temporary directory, reopens it there, and
 * deletes the directory at cleanup.
 */
export function directoryHarness(open: (dir: string) => Promise<MessageStore>): () => Promise<MessageStoreHarness> {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-history-'));
    let current = await open(dir);
    return {
      store: current,
      reopen: async () => {
        await current.close();
        current = await open(dir);
        return current;
      },
      cleanup: async () => {
        await current.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  };
}

/**
 * Runs the MessageStore contract (src/engines/messagestore/messagestore.ts) against an implementation.
 * Opening a store can be expensive (PGlite runs initdb), so `factory` is called once for the suite and
 * each test uses rooms no other test uses.
 */
export function messageStoreConformance(name: string, factory: () => Promise<MessageStoreHarness>): void {
  describe(`MessageStore conformance: ${name}`, () => {
    let harness: MessageStoreHarness;
    let store: MessageStore;
    let rooms = 0;
    /** The 2000-row room, once that test ran: checked again after reopening. */
    let bigRoom: RoomRef | undefined;
    /** A room no other test touches (in tenant `acme` unless given). */
    const fresh = (tenant = 'acme'): RoomRef => ({ tenant, room: `room-${++rooms}` });
    const msg = (ref: RoomRef, seq: number, extra: Partial<RoomMessage> = {}): RoomMessage => ({
      tenant: ref.tenant,
      room: ref.room,
      seq,
      epoch: 'E1',
      from: 'alice',
      ts: TS0 + seq,
      data: { text: `message ${seq}`, n: seq },
      ...extra,
    });
    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const batch = (ref: RoomRef, seqs: number[]): RoomMessage[] => seqs.map((s) => msg(ref, s));
    const seqsOf = (messages: readonly RoomMessage[]): number[] => messages.map((m) => m.seq);
    /** Every message of a room, oldest first, by paging backwards from the newest. */
    const all = async (ref: RoomRef, limit = 1000): Promise<RoomMessage[]> => {
      const out: RoomMessage[] = [];
      let page = await store.page(ref, { limit });
      out.unshift(...page.messages);
      while (page.more) {
        page = await store.page(ref, { before: page.messages[0]!.seq, limit });
        out.unshift(...page.messages);
      }
      return out;
    };

    beforeAll(async () => {
      harness = await factory();
      store = harness.store;
    });
    afterAll(async () => {
      await harness?.cleanup();
    });

    it('an unknown room has no messages and no position', async () => {
      const ref = fresh();
      expect(await store.page(ref, { limit: 50 })).toEqual({ messages: [], more: false });
      expect(await store.page(ref, { before: 10, limit: 50 })).toEqual({ messages: [], more: false });
      expect(await store.page(ref, { after: 0, limit: 50 })).toEqual({ messages: [], more: false });
      expect(await store.position(ref)).toBeNull();
      expect(store.health().ok).toBe(true);
    });

    it('stores messages unchanged and returns them in ascending seq order', async () => {
      const ref = fresh();
      const messages = [msg(ref, 1, { idem: 'client-1', from: 'bob' }), msg(ref, 2), msg(ref, 3, { ts: TS0 + 999_999, data: 'plain string' })];
      await store.insert([messages[2]!, messages[0]!, messages[1]!]);
      const page = await store.page(ref, { limit: 10 });
      expect(page).toEqual({ messages, more: false });
      expect(page.messages[0]!.idem).toBe('client-1');
      expect(page.messages[1]!.idem).toBeUndefined();
      expect(page.messages[2]!.ts).toBe(TS0 + 999_999);
    });

    it('stores an event name with the message; a message without one reads back with no event key', async () => {
      const ref = fresh();
      const dotted: RoomRef = { tenant: 'acme', room: `private-App.Models.User.${rooms}` };
      const ev = 'App\\Events\\Order"Shipped';
      const mixed = range(1, 300).map((s) => (s % 3 === 0 ? msg(ref, s, { event: `client-e${s}` }) : msg(ref, s)));
      const withIdem = [msg(dotted, 1, { event: ev, idem: 'k1' }), msg(dotted, 2), msg(dotted, 3, { event: '.foo' })];
      await store.insert([...mixed, ...withIdem]);
      const page = await store.page(dotted, { limit: 10 });
      expect(page).toEqual({ messages: withIdem, more: false });
      expect(page.messages.map((m) => m.event)).toEqual([ev, undefined, '.foo']);
      expect(Object.keys(page.messages[1]!)).not.toContain('event');
      expect(JSON.stringify(page.messages[1])).not.toContain('event');
      const got = await all(ref, 100);
      expect(got).toEqual(mixed);
      for (const m of got) {
        if (m.seq % 3 === 0) expect(m.event).toBe(`client-e${m.seq}`);
        else expect(Object.keys(m)).not.toContain('event');
      }
      const after = await store.page(ref, { after: 297, limit: 10 });
      expect(after.messages.map((m) => m.event)).toEqual([undefined, undefined, 'client-e300']);
    });

    it('stores a conflation key with the message; a message without one reads back with no key field', async () => {
      const ref = fresh();
      const mixed = range(1, 120).map((s) => (s % 4 === 0 ? msg(ref, s, { key: `AAPL-${s % 8}`, event: 'tick' }) : msg(ref, s)));
      await store.insert(mixed);
      const got = await all(ref, 50);
      expect(got).toEqual(mixed);
      for (const m of got) {
        if (m.seq % 4 === 0) expect(m.key).toBe(`AAPL-${m.seq % 8}`);
        else expect(Object.keys(m)).not.toContain('key');
      }
    });

    it('an empty batch is accepted and changes nothing', async () => {
      const ref = fresh();
      await store.insert([]);
      expect(await store.position(ref)).toBeNull();
    });

    it('insert is idempotent: the same batch twice stores every message once', async () => {
      const ref = fresh();
      const b = batch(ref, range(1, 20));
      await store.insert(b);
      await store.insert(b);
      expect(seqsOf(await all(ref))).toEqual(range(1, 20));
    });

    it('overlapping batches and duplicates inside one batch store each seq once', async () => {
      const ref = fresh();
      await store.insert(batch(ref, range(1, 10)));
      await store.insert(batch(ref, range(5, 15)));
      await store.insert(batch(ref, [16, 17, 16, 17, 18, 3]));
      expect(seqsOf(await all(ref))).toEqual(range(1, 18));
    });

    it('a row already present is left as is when the same seq is inserted again', async () => {
      const ref = fresh();
      const first = msg(ref, 1, { data: 'first', idem: 'a' });
      await store.insert([first]);
      await store.insert([msg(ref, 1, { data: 'second', from: 'mallory', epoch: 'E2' }), msg(ref, 2)]);
      const { messages } = await store.page(ref, { limit: 10 });
      expect(messages).toEqual([first, msg(ref, 2)]);
    });

    it('concurrent overlapping inserts store each seq once', async () => {
      const ref = fresh();
      await Promise.all([
        store.insert(batch(ref, range(1, 100))),
        store.insert(batch(ref, range(50, 150))),
        store.insert(batch(ref, range(1, 150))),
        store.insert(batch(ref, range(100, 200))),
      ]);
      expect(seqsOf(await all(ref))).toEqual(range(1, 200));
    });

    it('isolates tenants: the same room name in two tenants are two rooms', async () => {
      const a: RoomRef = { tenant: `t${++rooms}a`, room: 'lobby' };
      const b: RoomRef = { tenant: `t${rooms}b`, room: 'lobby' };
      await store.insert([...batch(a, range(1, 5)), msg(b, 1, { epoch: 'EB', data: 'b-only' })]);
      const pageA = await store.page(a, { limit: 100 });
      const pageB = await store.page(b, { limit: 100 });
      expect(seqsOf(pageA.messages)).toEqual(range(1, 5));
      expect(pageA.messages.every((m) => m.tenant === a.tenant && m.room === 'lobby')).toBe(true);
      expect(pageB.messages).toEqual([msg(b, 1, { epoch: 'EB', data: 'b-only' })]);
      expect(await store.position(a)).toEqual({ seq: 5, epoch: 'E1' });
      expect(await store.position(b)).toEqual({ seq: 1, epoch: 'EB' });
      expect(await store.page(b, { after: 1, limit: 10 })).toEqual({ messages: [], more: false });
      expect(await store.position({ tenant: `t${rooms}c`, room: 'lobby' })).toBeNull();
    });

    it('isolates rooms whose names share a prefix', async () => {
      const t = `t${++rooms}`;
      const r: RoomRef = { tenant: t, room: 'r' };
      const r2: RoomRef = { tenant: t, room: 'r2' };
      const rWild: RoomRef = { tenant: t, room: 'r_' };
      await store.insert([...batch(r, [1, 2]), ...batch(r2, [1, 2, 3]), ...batch(rWild, [1])]);
      expect(seqsOf((await store.page(r, { limit: 10 })).messages)).toEqual([1, 2]);
      expect(seqsOf((await store.page(r2, { limit: 10 })).messages)).toEqual([1, 2, 3]);
      expect(seqsOf((await store.page(rWild, { limit: 10 })).messages)).toEqual([1]);
    });

    it('pages newest first: without before/after the newest `limit`, ascending, `more` when older exist', async () => {
      const ref = fresh();
      await store.insert(batch(ref, range(1, 25)));
      expect(await store.page(ref, { limit: 10 })).toEqual({ messages: batch(ref, range(16, 25)), more: true });
      expect(await store.page(ref, { limit: 25 })).toEqual({ messages: batch(ref, range(1, 25)), more: false });
      expect(await store.page(ref, { limit: 26 })).toEqual({ messages: batch(ref, range(1, 25)), more: false });
      expect(await store.page(ref, { limit: 24 })).toEqual({ messages: batch(ref, range(2, 25)), more: true });
    });

    it('pages with before: the newest `limit` below it, `more` when older exist', async () => {
      const ref = fresh();
      await store.insert(batch(ref, range(1, 25)));
      expect(await store.page(ref, { before: 16, limit: 10 })).toEqual({ messages: batch(ref, range(6, 15)), more: true });
      expect(await store.page(ref, { before: 11, limit: 10 })).toEqual({ messages: batch(ref, range(1, 10)), more: false });
      expect(await store.page(ref, { before: 6, limit: 10 })).toEqual({ messages: batch(ref, range(1, 5)), more: false });
      expect(await store.page(ref, { before: 1, limit: 10 })).toEqual({ messages: [], more: false });
      expect(await store.page(ref, { before: 0, limit: 10 })).toEqual({ messages: [], more: false });
      expect(await store.page(ref, { before: 1000, limit: 3 })).toEqual({ messages: batch(ref, [23, 24, 25]), more: true });
      // Walking back page by page visits every message once.
      expect(seqsOf(await all(ref, 7))).toEqual(range(1, 25));
    });

    it('pages with after: the oldest `limit` above it, `more` when newer exist', async () => {
      const ref = fresh();
      await store.insert(batch(ref, range(1, 25)));
      expect(await store.page(ref, { after: 0, limit: 10 })).toEqual({ messages: batch(ref, range(1, 10)), more: true });
      expect(await store.page(ref, { after: 10, limit: 10 })).toEqual({ messages: batch(ref, range(11, 20)), more: true });
      expect(await store.page(ref, { after: 15, limit: 10 })).toEqual({ messages: batch(ref, range(16, 25)), more: false });
      expect(await store.page(ref, { after: 20, limit: 10 })).toEqual({ messages: batch(ref, range(21, 25)), more: false });
      expect(await store.page(ref, { after: 25, limit: 10 })).toEqual({ messages: [], more: false });
      const walked: number[] = [];
      let after = 0;
      for (;;) {
        const page = await store.page(ref, { after, limit: 4 });
        walked.push(...seqsOf(page.messages));
        if (!page.more) break;
        after = page.messages[page.messages.length - 1]!.seq;
      }
      expect(walked).toEqual(range(1, 25));
    });

    it('pages by seq, not by position, when seqs have gaps', async () => {
      const ref = fresh();
      await store.insert(batch(ref, [1, 2, 5, 9, 30]));
      expect(await store.page(ref, { before: 9, limit: 2 })).toEqual({ messages: batch(ref, [2, 5]), more: true });
      expect(await store.page(ref, { after: 2, limit: 2 })).toEqual({ messages: batch(ref, [5, 9]), more: true });
      expect(await store.page(ref, { after: 5, limit: 2 })).toEqual({ messages: batch(ref, [9, 30]), more: false });
      expect(await store.page(ref, { before: 29, limit: 10 })).toEqual({ messages: batch(ref, [1, 2, 5, 9]), more: false });
    });

    it('honours limit 1 and rejects a limit outside 1..1000 or both before and after', async () => {
      const ref = fresh();
      await store.insert(batch(ref, range(1, 3)));
      expect(await store.page(ref, { limit: 1 })).toEqual({ messages: batch(ref, [3]), more: true });
      expect(await store.page(ref, { before: 3, limit: 1 })).toEqual({ messages: batch(ref, [2]), more: true });
      expect(await store.page(ref, { after: 1, limit: 1 })).toEqual({ messages: batch(ref, [2]), more: true });
      for (const limit of [0, -1, 1001, 1.5, Number.NaN]) {
        await expect(store.page(ref, { limit }), `limit ${limit}`).rejects.toThrow();
      }
      await expect(store.page(ref, { before: 3, after: 1, limit: 10 })).rejects.toThrow();
      expect(store.health().ok).toBe(true);
    });

    it('position is the highest stored seq with its epoch, whatever the insert order', async () => {
      const ref = fresh();
      await store.insert([msg(ref, 5), msg(ref, 6), msg(ref, 7, { epoch: 'E2' })]);
      expect(await store.position(ref)).toEqual({ seq: 7, epoch: 'E2' });
      await store.insert(batch(ref, range(1, 4)));
      expect(await store.position(ref)).toEqual({ seq: 7, epoch: 'E2' });
      await store.insert([msg(ref, 8, { epoch: 'E3' })]);
      expect(await store.position(ref)).toEqual({ seq: 8, epoch: 'E3' });
    });

    it('keeps seq and ts exact up to Number.MAX_SAFE_INTEGER', async () => {
      const ref = fresh();
      const big = Number.MAX_SAFE_INTEGER;
      const messages = [msg(ref, big - 1, { ts: 0 }), msg(ref, big, { ts: big })];
      await store.insert(messages);
      expect(await store.page(ref, { limit: 10 })).toEqual({ messages, more: false });
      expect(await store.position(ref)).toEqual({ seq: big, epoch: 'E1' });
      expect(await store.page(ref, { before: big, limit: 10 })).toEqual({ messages: [messages[0]], more: false });
    });

    it('round-trips JSON data: nesting, unicode, escapes, numbers, scalars', async () => {
      const ref = fresh();
      const datas: Json[] = [
        { a: { b: { c: [1, [2, [3, { d: null }]]] } }, empty: {}, list: [], flag: true, off: false },
        { text: 'héllo wörld — 你好 — مرحبا — שלום — 🎉👩‍👩‍👧 — e\u0301', 'κλειδί 🔑': 'unicode key', '': 'empty key' },
        { quote: 'say "hi"', backslash: 'C:\\path\\u0000-not-an-escape', controls: 'line\nbreak\ttab\r\u0001\u001f', json: '{"looks":"like json"}' },
        {
          ints: [0, 1, -1, 42, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
          floats: [1.5, -2.25, 0.1, 1e-7, 123456.789, 1e21, 1.7976931348623157e308, 5e-324, 2.220446049250313e-16],
        },
        'just a string',
        12345.678,
        0,
        null,
        true,
        [],
        [1, 'two', { three: 3 }, [4], null, false],
        'x'.repeat(20_000),
        nested(100),
      ];
      const messages = datas.map((data, i) => msg(ref, i + 1, { data }));
      await store.insert(messages);
      const { messages: got } = await store.page(ref, { limit: 100 });
      expect(got.length).toBe(datas.length);
      got.forEach((m, i) => expect(m.data, `data #${i + 1}`).toEqual(datas[i]));
    });

    it('stores a batch of 2000 rows (across rooms and tenants) and pages through it', async () => {
      const ref = fresh();
      const other = fresh('other-tenant');
      bigRoom = ref;
      const messages = [...batch(ref, range(1, 2000)), ...batch(other, range(1, 37))];
      await store.insert(messages);
      expect(await store.position(ref)).toEqual({ seq: 2000, epoch: 'E1' });
      expect(await store.position(other)).toEqual({ seq: 37, epoch: 'E1' });
      const newest = await store.page(ref, { limit: 1000 });
      expect(seqsOf(newest.messages)).toEqual(range(1001, 2000));
      expect(newest.more).toBe(true);
      const older = await store.page(ref, { before: 1001, limit: 1000 });
      expect(older.messages).toEqual(batch(ref, range(1, 1000)));
      expect(older.more).toBe(false);
      expect(seqsOf((await store.page(ref, { after: 1000, limit: 1000 })).messages)).toEqual(range(1001, 2000));
      // Retrying the whole batch after a partial failure is harmless.
      await store.insert(messages);
      expect((await all(ref)).length).toBe(2000);
    });

    it('keeps its data across close and reopen', async (ctx) => {
      if (harness.reopen === undefined) return ctx.skip();
      const ref = fresh();
      const other = fresh('reopen-tenant');
      const messages = batch(ref, range(1, 30)).map((m) => ({ ...m, data: { nested: { seq: m.seq, s: 'ü🎉' } } }));
      await store.insert([...messages, msg(other, 1, { epoch: 'EO' })]);
      store = await harness.reopen();
      expect(store.health().ok).toBe(true);
      expect(await store.page(ref, { limit: 1000 })).toEqual({ messages, more: false });
      expect(await store.position(ref)).toEqual({ seq: 30, epoch: 'E1' });
      expect(await store.position(other)).toEqual({ seq: 1, epoch: 'EO' });
      // Still idempotent against rows written before the reopen, and writable.
      await store.insert(batch(ref, range(25, 35)).map((m) => ({ ...m, data: 'rewritten' })));
      const after = await all(ref);
      expect(seqsOf(after)).toEqual(range(1, 35));
      expect(after.slice(0, 30)).toEqual(messages);
      // Rooms written by earlier tests are still there too.
      if (bigRoom !== undefined) {
        expect(await store.position(bigRoom)).toEqual({ seq: 2000, epoch: 'E1' });
        expect(seqsOf((await store.page(bigRoom, { before: 3, limit: 10 })).messages)).toEqual([1, 2]);
      }
    });

    // Last: it closes the store (the harness's cleanup closes it again).
    it('after close (twice) is unhealthy and rejects every operation', async () => {
      const ref = fresh();
      await store.insert([msg(ref, 1)]);
      await store.close();
      await store.close();
      expect(store.health()).toEqual({ ok: false, detail: 'closed' });
      await expect(store.insert([msg(ref, 2)])).rejects.toThrow(/closed/);
      await expect(store.insert([])).rejects.toThrow(/closed/);
      await expect(store.page(ref, { limit: 1 })).rejects.toThrow(/closed/);
      await expect(store.position(ref)).rejects.toThrow(/closed/);
    });
  });
}

/** `{ d: { d: … { d: 'bottom' } } }`, `depth` objects deep. */
function nested(depth: number): Json {
  let value: Json = 'bottom';
  for (let i = 0; i < depth; i++) value = { d: value };
  return value;
}
