import { afterEach, describe, expect, it } from 'vitest';
import type { RoomLog, RoomLogOptions } from '../../src/engines/roomlog/roomlog.js';
import type { RoomPosition, RoomRef } from '../../src/engines/types.js';
import { sleep } from '../helpers/wait.js';

/** What a RoomLog implementation provides to the conformance suite; one per test. */
export interface RoomLogHarness {
  /**
   * `n` logs sharing one state, as `n` gateway nodes would (an in-process implementation may return
   * the same instance `n` times).
   */
  logs(n: number): Promise<RoomLog[]>;
  /** Closes the logs and drops the state. */
  cleanup(): Promise<void>;
}

export type RoomLogFactory = (options: Partial<RoomLogOptions>) => Promise<RoomLogHarness>;

/** Allowed difference between a timestamp taken by the test and one taken by the log. */
const CLOCK_SLACK_MS = 100;

const seqs = (messages: readonly { seq: number }[]): number[] => messages.map((m) => m.seq);
const upTo = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Runs the RoomLog contract (src/engines/roomlog/roomlog.ts) against an implementation.
 * `factory` gets option overrides (small windows, a seed) and must give fresh state on every call.
 */
export function roomLogConformance(name: string, factory: RoomLogFactory): void {
  describe(`RoomLog conformance: ${name}`, () => {
    let harness: RoomLogHarness | undefined;
    const open = async (options: Partial<RoomLogOptions> = {}, n = 1): Promise<RoomLog[]> => {
      harness = await factory(options);
      return harness.logs(n);
    };
    afterEach(async () => {
      await harness?.cleanup();
      harness = undefined;
    });

    const room: RoomRef = { tenant: 'acme', room: 'lobby' };

    it('starts an unknown room at seq 0 with a fresh epoch that stays the same', async () => {
      const [log] = await open();
      const p1 = await log!.position(room);
      expect(p1.seq).toBe(0);
      expect(typeof p1.epoch).toBe('string');
      expect(p1.epoch.length).toBeGreaterThan(0);
      expect(await log!.position(room)).toEqual(p1);
      const other = await log!.position({ tenant: 'acme', room: 'other' });
      expect(other.seq).toBe(0);
      expect(await log!.since(room, 0, p1.epoch)).toEqual({ messages: [], position: p1, complete: true });
    });

    it('assigns seq from 1, stamps ts, epoch and the input, and keeps the epoch', async () => {
      const [log] = await open();
      const before = await log!.position(room);
      const t0 = Date.now();
      const r1 = await log!.append(room, { from: 'alice', data: { text: 'hi', n: [1, 2] } });
      const r2 = await log!.append(room, { from: 'bob', data: 'yo', idem: 'k1' });
      const t1 = Date.now();
      expect(r1.duplicate).toBe(false);
      expect(r1.message).toMatchObject({ tenant: 'acme', room: 'lobby', seq: 1, epoch: before.epoch, from: 'alice' });
      expect(r1.message.data).toEqual({ text: 'hi', n: [1, 2] });
      expect(r1.message.idem).toBeUndefined();
      expect(r2.message).toMatchObject({ seq: 2, epoch: before.epoch, from: 'bob', data: 'yo', idem: 'k1' });
      for (const m of [r1.message, r2.message]) {
        expect(m.ts).toBeGreaterThanOrEqual(t0 - CLOCK_SLACK_MS);
        expect(m.ts).toBeLessThanOrEqual(t1 + CLOCK_SLACK_MS);
      }
      expect(r2.message.ts).toBeGreaterThanOrEqual(r1.message.ts);
      expect(await log!.position(room)).toEqual({ seq: 2, epoch: before.epoch });
    });

    it('gives 200 concurrent appends to one room distinct, gap-free seqs, also across nodes', async () => {
      const logs = await open({}, 3);
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => logs[i % logs.length]!.append(room, { from: 'u', data: i })));
      expect(seqs(results.map((r) => r.message)).sort((a, b) => a - b)).toEqual(upTo(1, 200));
      const epochs = new Set(results.map((r) => r.message.epoch));
      expect(epochs.size).toBe(1);
      const pos = await logs[1]!.position(room);
      expect(pos).toEqual({ seq: 200, epoch: [...epochs][0] });
      const all = await logs[2]!.since(room, 0, pos.epoch);
      expect(all.complete).toBe(true);
      expect(seqs(all.messages)).toEqual(upTo(1, 200));
      // Each stored message is the one its append returned.
      for (const r of results) expect(all.messages[r.message.seq - 1]).toEqual(r.message);
    });

    it('keeps rooms of different tenants and names apart', async () => {
      const [log] = await open();
      const twin: RoomRef = { tenant: 'globex', room: 'lobby' };
      const other: RoomRef = { tenant: 'acme', room: 'other' };
      await log!.append(room, { from: 'a', data: 1 });
      await log!.append(room, { from: 'a', data: 2 });
      expect((await log!.append(twin, { from: 'a', data: 3 })).message).toMatchObject({ tenant: 'globex', seq: 1 });
      expect((await log!.append(other, { from: 'a', data: 4 })).message.seq).toBe(1);
      const pos = await log!.position(twin);
      expect(seqs((await log!.since(twin, 0, pos.epoch)).messages)).toEqual([1]);
      expect((await log!.since(twin, 0, pos.epoch)).messages[0]!.data).toBe(3);
      expect((await log!.position(room)).seq).toBe(2);
    });

    it('returns the first message for a repeated (from, idem), storing nothing new', async () => {
      const [log] = await open();
      const first = await log!.append(room, { from: 'alice', data: 'one', idem: 'x' });
      const again = await log!.append(room, { from: 'alice', data: 'changed', idem: 'x' });
      expect(again).toEqual({ message: first.message, duplicate: true });
      expect((await log!.position(room)).seq).toBe(1);
      // idem is scoped to the sender and to the room.
      const bob = await log!.append(room, { from: 'bob', data: 'two', idem: 'x' });
      expect(bob).toMatchObject({ duplicate: false, message: { seq: 2 } });
      const elsewhere = await log!.append({ tenant: 'acme', room: 'other' }, { from: 'alice', data: 'o', idem: 'x' });
      expect(elsewhere).toMatchObject({ duplicate: false, message: { seq: 1 } });
      const pos = await log!.position(room);
      expect(seqs((await log!.since(room, 0, pos.epoch)).messages)).toEqual([1, 2]);
    });

    it('carries an event name through append, since and range; a message without one has no event key', async () => {
      const logs = await open({}, 2);
      const ev = 'App\\Events\\Order"Shipped';
      const withEvent = await logs[0]!.append(room, { from: 'alice', data: { id: 7 }, event: ev, idem: 'e1' });
      const plain = await logs[1]!.append(room, { from: 'alice', data: 'plain' });
      expect(withEvent.message).toMatchObject({ seq: 1, event: ev, data: { id: 7 }, idem: 'e1' });
      expect('event' in plain.message).toBe(false);
      // A repeat of the idem returns the first message with its event, whatever the repeat says.
      const again = await logs[1]!.append(room, { from: 'alice', data: 'other', event: 'client-other', idem: 'e1' });
      expect(again).toEqual({ message: withEvent.message, duplicate: true });
      const noEventRepeat = await logs[0]!.append(room, { from: 'alice', data: 'x', idem: 'e1' });
      expect(noEventRepeat.message.event).toBe(ev);
      for (const log of logs) {
        const pos = await log.position(room);
        const since = await log.since(room, 0, pos.epoch);
        expect(since.messages).toEqual([withEvent.message, plain.message]);
        expect(since.messages[0]!.event).toBe(ev);
        expect(Object.keys(since.messages[1]!)).not.toContain('event');
        const range = await log.range(room, 1, 2);
        expect(range).toEqual([withEvent.message, plain.message]);
        expect(Object.keys(range[1]!)).not.toContain('event');
        expect(JSON.stringify(range[1])).not.toContain('event');
      }
    });

    it('carries a conflation key through append, since and range; a message without one has no key field', async () => {
      const logs = await open({}, 2);
      const keyed = await logs[0]!.append(room, { from: 'alice', data: 1, key: 'AAPL', event: 'tick' });
      const plain = await logs[1]!.append(room, { from: 'alice', data: 2 });
      expect(keyed.message).toMatchObject({ seq: 1, key: 'AAPL', event: 'tick', data: 1 });
      expect('key' in plain.message).toBe(false);
      for (const log of logs) {
        const pos = await log.position(room);
        expect((await log.since(room, 0, pos.epoch)).messages).toEqual([keyed.message, plain.message]);
        expect(await log.range(room, 1, 2)).toEqual([keyed.message, plain.message]);
      }
    });

    it('refuses appends over maxPerSecond in the current second with `full`, using up no seq; a duplicate is still answered', async () => {
      const logs = await open({}, 2);
      const cap = 5;
      // Aligned to the start of a second (of the test's clock; the log's may differ by a few ms), so the 12
      // concurrent appends fall in at most two of the log's one-second windows.
      await sleep(1000 - (Date.now() % 1000) + 20);
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => logs[i % 2]!.append(room, { from: 'alice', data: i, idem: `r${i}`, maxPerSecond: cap })),
      );
      const ok = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.message.seq);
      const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason as Error & { code?: string; engine?: string });
      expect(ok.length).toBeGreaterThanOrEqual(cap);
      expect(ok.length).toBeLessThanOrEqual(2 * cap);
      expect(refused.length).toBe(12 - ok.length);
      for (const e of refused) expect(e).toMatchObject({ name: 'EngineError', engine: 'roomlog', code: 'full' });
      // Refusals took no seq: the accepted ones are 1..n.
      expect(ok.sort((a, b) => a - b)).toEqual(upTo(1, ok.length));
      expect((await logs[0]!.position(room)).seq).toBe(ok.length);
      // A repeat of an accepted idem is a duplicate even while the room is at its cap.
      const accepted = results.findIndex((r) => r.status === 'fulfilled');
      const again = await logs[1]!.append(room, { from: 'alice', data: 'again', idem: `r${accepted}`, maxPerSecond: cap });
      expect(again.duplicate).toBe(true);
      // Without the cap nothing is refused.
      await logs[0]!.append(room, { from: 'alice', data: 'free' });
    });

    it('keeps rooms whose names differ only in Pusher characters apart (`.`, `%`-free look-alikes)', async () => {
      const [log] = await open();
      const names = ['x.y', 'x_y', 'x-y', 'x;y', 'x,y', 'x=y', 'private-App.Models.User.1', 'presence-chat.1', 'presence-chat-1'];
      for (const [i, name] of names.entries()) await log!.append({ tenant: 'acme', room: name }, { from: 'u', data: i, event: `e${i}` });
      for (const [i, name] of names.entries()) {
        const ref = { tenant: 'acme', room: name };
        const pos = await log!.position(ref);
        expect(pos.seq).toBe(1);
        const r = await log!.since(ref, 0, pos.epoch);
        expect(r.messages.map((m) => [m.room, m.data, m.event])).toEqual([[name, i, `e${i}`]]);
      }
    });

    it('under concurrency, exactly one append of a repeated idem is new and all get its message', async () => {
      const logs = await open({}, 2);
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => logs[i % 2]!.append(room, { from: 'alice', data: i, idem: 'same' })));
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      const original = results.find((r) => !r.duplicate)!.message;
      for (const r of results) expect(r.message).toEqual(original);
      expect((await logs[0]!.position(room)).seq).toBe(1);
    });

    it('forgets idempotency ids after idemMs', async () => {
      const [log] = await open({ idemMs: 150 });
      const first = await log!.append(room, { from: 'alice', data: 1, idem: 'x' });
      await sleep(250);
      const later = await log!.append(room, { from: 'alice', data: 2, idem: 'x' });
      expect(later.duplicate).toBe(false);
      expect(later.message.seq).toBe(first.message.seq + 1);
    });

    it('returns every message after seq with complete: true while the window has them', async () => {
      const [log] = await open();
      for (let i = 1; i <= 5; i++) await log!.append(room, { from: 'u', data: i });
      const pos = await log!.position(room);
      const r = await log!.since(room, 2, pos.epoch);
      expect(r.complete).toBe(true);
      expect(r.position).toEqual({ seq: 5, epoch: pos.epoch });
      expect(seqs(r.messages)).toEqual([3, 4, 5]);
      expect(r.messages.map((m) => m.data)).toEqual([3, 4, 5]);
      expect(await log!.since(room, 5, pos.epoch)).toEqual({ messages: [], position: pos, complete: true });
      expect(seqs(await log!.range(room, 2, 4))).toEqual([2, 3, 4]);
      expect(seqs(await log!.range(room, 4, 99))).toEqual([4, 5]);
      expect(await log!.range(room, 6, 9)).toEqual([]);
    });

    it('reports complete: false when the epoch differs', async () => {
      const [log] = await open();
      for (let i = 1; i <= 3; i++) await log!.append(room, { from: 'u', data: i });
      const pos = await log!.position(room);
      const r = await log!.since(room, 1, `${pos.epoch}-other`);
      expect(r.complete).toBe(false);
      expect(r.position).toEqual(pos);
      const nothing = await log!.since(room, 3, 'not-the-epoch');
      expect(nothing.complete).toBe(false);
    });

    it('keeps the newest windowSize messages; older ones make since incomplete', async () => {
      const [log] = await open({ windowSize: 3 });
      for (let i = 1; i <= 10; i++) await log!.append(room, { from: 'u', data: i });
      const pos = await log!.position(room);
      expect(pos.seq).toBe(10);
      const gap = await log!.since(room, 2, pos.epoch);
      expect(gap.complete).toBe(false);
      expect(seqs(gap.messages)).toEqual([8, 9, 10]);
      expect((await log!.since(room, 6, pos.epoch)).complete).toBe(false);
      const ok = await log!.since(room, 7, pos.epoch);
      expect(ok.complete).toBe(true);
      expect(seqs(ok.messages)).toEqual([8, 9, 10]);
      expect(seqs(await log!.range(room, 1, 10))).toEqual([8, 9, 10]);
      expect(await log!.since(room, 10, pos.epoch)).toMatchObject({ messages: [], complete: true });
    });

    it('drops window entries older than windowMs', async () => {
      // Long enough that a starved test process still reads a message before it ages out; the sleeps
      // below (windowMs + 300) are lower bounds, so the expiry checks stay exact.
      const windowMs = 1_000;
      const [log] = await open({ windowMs });
      await log!.append(room, { from: 'u', data: 1 });
      await log!.append(room, { from: 'u', data: 2 });
      const young = await log!.position(room);
      expect(seqs((await log!.since(room, 0, young.epoch)).messages)).toEqual([1, 2]);
      await sleep(windowMs + 300);
      await log!.append(room, { from: 'u', data: 3 });
      const pos = await log!.position(room);
      expect(pos).toEqual({ seq: 3, epoch: young.epoch });
      const r = await log!.since(room, 0, pos.epoch);
      expect(r.complete).toBe(false);
      expect(seqs(r.messages)).toEqual([3]);
      expect((await log!.since(room, 2, pos.epoch)).complete).toBe(true);
      expect(seqs(await log!.range(room, 1, 3))).toEqual([3]);
      await sleep(windowMs + 300);
      const empty = await log!.since(room, 1, pos.epoch);
      expect(empty).toEqual({ messages: [], position: pos, complete: false });
      expect(await log!.since(room, 3, pos.epoch)).toEqual({ messages: [], position: pos, complete: true });
    });

    it('continues a seeded room with its seq and epoch, seeding concurrent first appends once', async () => {
      const seeded: RoomPosition = { seq: 41, epoch: 'E1seed' };
      const calls: string[] = [];
      const [log] = await open({
        seed: async (ref) => {
          calls.push(`${ref.tenant}/${ref.room}`);
          await sleep(20);
          return ref.room === 'lobby' ? seeded : null;
        },
      });
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log!.append(room, { from: 'u', data: i })));
      expect(seqs(results.map((r) => r.message)).sort((a, b) => a - b)).toEqual(upTo(42, 91));
      for (const r of results) expect(r.message.epoch).toBe('E1seed');
      expect(await log!.position(room)).toEqual({ seq: 91, epoch: 'E1seed' });
      const r = await log!.since(room, 41, 'E1seed');
      expect(r.complete).toBe(true);
      expect(seqs(r.messages)).toEqual(upTo(42, 91));
      expect((await log!.since(room, 40, 'E1seed')).complete).toBe(false);
      // Unknown to the seed: starts over with a fresh epoch.
      const fresh = await log!.position({ tenant: 'acme', room: 'new' });
      expect(fresh.seq).toBe(0);
      expect(fresh.epoch).not.toBe('E1seed');
      expect(calls.filter((c) => c === 'acme/lobby').length).toBeGreaterThanOrEqual(1);
    });

    it('reports a seeded position before any append, and since from it is complete', async () => {
      const [log] = await open({ seed: async () => ({ seq: 7, epoch: 'E7' }) });
      expect(await log!.position(room)).toEqual({ seq: 7, epoch: 'E7' });
      expect(await log!.since(room, 7, 'E7')).toEqual({ messages: [], position: { seq: 7, epoch: 'E7' }, complete: true });
      expect((await log!.since(room, 3, 'E7')).complete).toBe(false);
      expect((await log!.append(room, { from: 'u', data: null })).message).toMatchObject({ seq: 8, epoch: 'E7' });
    });
  });
}
