import { afterEach, describe, expect, it } from 'vitest';
import type { DurableConsumer, DurableLog } from '../../src/engines/durablelog/durablelog.js';
import type { RoomMessage } from '../../src/engines/types.js';
import { deferred, sleep, waitFor } from '../helpers/wait.js';

/** What a DurableLog implementation provides to the conformance suite; one per test. */
export interface DurableLogHarness {
  /** A log with no messages and no consumer. */
  readonly log: DurableLog;
  /**
   * True when `append` resolves only once the consumer committed the message (the in-process log);
   * false when it resolves once the log itself stored it (JetStream).
   */
  readonly ackMeansCommitted: boolean;
  /** Stops consumers, closes the log and drops its data. */
  cleanup(): Promise<void>;
}

/** Time given to something that must NOT happen. */
const SETTLE_MS = 50;

function msg(room: string, seq: number, data: RoomMessage['data'] = seq): RoomMessage {
  return { tenant: 'acme', room, seq, epoch: 'E', from: 'u', ts: 1_700_000_000_000 + seq, data };
}

const keyOf = (m: RoomMessage): string => `${m.tenant}/${m.room}/${m.seq}`;

/** Records every handler call; `fail(n)` makes the next n calls reject, `hold()` blocks calls. */
function recorder() {
  const calls: { at: number; batch: RoomMessage[]; ok: boolean }[] = [];
  let failures = 0;
  let gate: Promise<void> | undefined;
  return {
    calls,
    /** Messages of successful calls, in delivery order. */
    committed: (): RoomMessage[] => calls.filter((c) => c.ok).flatMap((c) => c.batch),
    fail(n: number): void {
      failures = n;
    },
    hold(): () => void {
      const d = deferred();
      gate = d.promise;
      return () => {
        gate = undefined;
        d.resolve();
      };
    },
    handler: async (batch: RoomMessage[]): Promise<void> => {
      const call = { at: Date.now(), batch: [...batch], ok: false };
      calls.push(call);
      if (gate !== undefined) await gate;
      if (failures > 0) {
        failures -= 1;
        throw new Error('handler failure (test)');
      }
      call.ok = true;
    },
  };
}

/**
 * Runs the DurableLog contract (src/engines/durablelog/durablelog.ts) against an implementation.
 * `factory` is called before every test and must give an empty, isolated log.
 */
export function durableLogConformance(name: string, factory: () => Promise<DurableLogHarness>): void {
  describe(`DurableLog conformance: ${name}`, () => {
    let harness: DurableLogHarness | undefined;
    let consumer: DurableConsumer | undefined;
    const open = async (): Promise<DurableLog> => {
      harness = await factory();
      return harness.log;
    };
    afterEach(async () => {
      await consumer?.stop();
      consumer = undefined;
      await harness?.cleanup();
      harness = undefined;
    });

    it('delivers messages unchanged, in batches of at most maxBatch, in append order per room', async () => {
      const log = await open();
      const rec = recorder();
      consumer = log.consume(rec.handler, { maxBatch: 7, maxWaitMs: 5, retryMs: 20 });
      const sent: RoomMessage[] = [];
      for (let i = 1; i <= 40; i++) {
        sent.push(msg('a', i, { n: i, text: `a${i}` }));
        if (i % 2 === 0) sent.push(msg('b', i / 2, [i, 'b']));
      }
      await Promise.all(sent.map((m) => log.append(m)));
      await waitFor(() => rec.committed().length >= sent.length, 10_000, 'every message committed');
      for (const call of rec.calls) {
        expect(call.batch.length).toBeGreaterThanOrEqual(1);
        expect(call.batch.length).toBeLessThanOrEqual(7);
      }
      const got = rec.committed();
      expect(got).toHaveLength(sent.length);
      expect(new Set(got.map(keyOf))).toEqual(new Set(sent.map(keyOf)));
      for (const room of ['a', 'b']) {
        expect(got.filter((m) => m.room === room)).toEqual(sent.filter((m) => m.room === room));
      }
    });

    it('carries an event name through append, uncommitted and delivery; a message without one has no event key', async () => {
      const log = await open();
      const ev = 'App\\Events\\Order"Shipped';
      const rooms = ['private-App.Models.User.1', 'private-App%Models%User%1', 'x.y', 'x;y'];
      const sent = rooms.flatMap((room) => [{ ...msg(room, 1, { id: 1 }), event: ev, idem: 'i1' }, msg(room, 2, 'plain')]);
      const appends = Promise.all(sent.map((m) => log.append(m)));
      appends.catch(() => undefined);
      await waitFor(() => log.lag().messages === sent.length, 10_000, 'every message pending');
      for (const room of rooms) {
        const pending = (await log.uncommitted({ tenant: 'acme', room }, [1, 2])).sort((x, y) => x.seq - y.seq);
        expect(pending).toEqual(sent.filter((m) => m.room === room));
        expect(pending[0]!.event).toBe(ev);
        expect(Object.keys(pending[1]!)).not.toContain('event');
      }
      const rec = recorder();
      consumer = log.consume(rec.handler, { maxBatch: 100, maxWaitMs: 5, retryMs: 20 });
      await appends;
      await waitFor(() => rec.committed().length >= sent.length, 10_000, 'every message committed');
      const got = rec.committed();
      for (const room of rooms) expect(got.filter((m) => m.room === room)).toEqual(sent.filter((m) => m.room === room));
      for (const m of got) {
        if (m.seq === 1) expect(m.event).toBe(ev);
        else expect(Object.keys(m)).not.toContain('event');
      }
    });

    it('fills a batch up to maxBatch when messages are already waiting', async () => {
      const log = await open();
      const rec = recorder();
      const sent = Array.from({ length: 30 }, (_, i) => msg('a', i + 1));
      const appends = Promise.all(sent.map((m) => log.append(m)));
      appends.catch(() => undefined);
      await waitFor(() => log.lag().messages === 30, 10_000, '30 messages pending');
      consumer = log.consume(rec.handler, { maxBatch: 10, maxWaitMs: 50, retryMs: 20 });
      await appends;
      await waitFor(() => rec.committed().length >= 30, 10_000, 'every message committed');
      expect(rec.calls.map((c) => c.batch.length)).toEqual([10, 10, 10]);
      expect(rec.committed()).toEqual(sent);
    });

    it('redelivers a failed batch after retryMs with backoff; nothing later in the room comes first', async () => {
      const log = await open();
      const rec = recorder();
      const retryMs = 30;
      rec.fail(3);
      const release = rec.hold();
      consumer = log.consume(rec.handler, { maxBatch: 5, maxWaitMs: 5, retryMs });
      const first = [1, 2, 3].map((s) => msg('a', s));
      const firstAppends = Promise.all(first.map((m) => log.append(m)));
      firstAppends.catch(() => undefined);
      await waitFor(() => rec.calls.length === 1, 10_000, 'first handler call');
      // Appended while the first batch is in flight and then failing: must wait for it.
      const later = [4, 5, 6, 7, 8].map((s) => msg('a', s));
      const laterAppends = Promise.all(later.map((m) => log.append(m)));
      laterAppends.catch(() => undefined);
      release();
      await waitFor(() => rec.calls.length >= 2, 10_000, 'a retry');
      // lag() is the last completed poll (JetStream refreshes it every lagPollMs): wait for a poll
      // that saw the failed batch still pending rather than reading a stale value right away.
      await waitFor(() => log.lag().messages >= 3, 5_000, 'the failed batch counted as pending');
      await Promise.all([firstAppends, laterAppends]);
      await waitFor(() => rec.committed().length >= 8, 10_000, 'everything committed');
      const failed = rec.calls.filter((c) => !c.ok);
      expect(failed.length).toBeGreaterThanOrEqual(3);
      const firstCall = rec.calls[0]!.batch.map(keyOf);
      expect(firstCall.length).toBeGreaterThanOrEqual(1);
      const firstSuccess = rec.calls.findIndex((c) => c.ok);
      for (const call of rec.calls.slice(0, firstSuccess + 1)) {
        // Every redelivery starts with the failed batch: nothing after it is delivered before.
        expect(call.batch.slice(0, firstCall.length).map(keyOf)).toEqual(firstCall);
      }
      // Backoff: at least retryMs, then at least twice as long (lower bounds only).
      const gaps = rec.calls.slice(1, 4).map((c, i) => c.at - rec.calls[i]!.at);
      expect(gaps[0]!).toBeGreaterThanOrEqual(retryMs - 5);
      expect(gaps[1]!).toBeGreaterThanOrEqual(2 * retryMs - 5);
      expect(gaps[2]!).toBeGreaterThanOrEqual(4 * retryMs - 5);
      // At least once, and committed in order.
      const seen = new Set<string>();
      const order = rec.committed().filter((m) => !seen.has(keyOf(m)) && seen.add(keyOf(m)));
      expect(order.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      await waitFor(() => log.lag().messages === 0, 10_000, 'no lag');
    });

    it('reports lag: pending count and the age of the oldest', async () => {
      const log = await open();
      expect(log.lag()).toEqual({ messages: 0, oldestMs: 0 });
      const rec = recorder();
      const release = rec.hold();
      consumer = log.consume(rec.handler, { maxBatch: 2, maxWaitMs: 5, retryMs: 20 });
      const appends = Promise.all([1, 2, 3].map((s) => log.append(msg('a', s))));
      appends.catch(() => undefined);
      await waitFor(() => log.lag().messages === 3, 10_000, 'three pending');
      // lag() is the last completed poll, not a live reading: wait for a poll that saw the oldest
      // message at least 50 ms old (the handler is held, so it can only get older).
      await waitFor(() => log.lag().oldestMs >= 50, 5_000, 'the oldest pending message aged 50 ms');
      const lag = log.lag();
      expect(lag.messages).toBe(3);
      expect(lag.oldestMs).toBeGreaterThanOrEqual(50);
      release();
      await appends;
      await waitFor(() => log.lag().messages === 0, 10_000, 'lag back to zero');
      expect(log.lag()).toEqual({ messages: 0, oldestMs: 0 });
    });

    it('stores a repeated (tenant, room, seq) once', async () => {
      const log = await open();
      const rec = recorder();
      consumer = log.consume(rec.handler, { maxBatch: 10, maxWaitMs: 5, retryMs: 20 });
      const m = msg('a', 1, 'first');
      await Promise.all([log.append(m), log.append(m), log.append({ ...m })]);
      await log.append(m);
      await log.append({ ...m, tenant: 'globex' });
      await log.append(msg('a', 2));
      await waitFor(() => rec.committed().some((x) => x.seq === 2), 10_000, 'sentinel');
      await sleep(SETTLE_MS);
      const got = rec.committed().map(keyOf);
      expect(got.filter((k) => k === 'acme/a/1')).toHaveLength(1);
      expect(got.filter((k) => k === 'globex/a/1')).toHaveLength(1);
    });

    it('acks an append only once the message is durable', async () => {
      const log = await open();
      const rec = recorder();
      const release = rec.hold();
      consumer = log.consume(rec.handler, { maxBatch: 10, maxWaitMs: 5, retryMs: 20 });
      let acked = false;
      const append = log.append(msg('a', 1)).then(() => {
        acked = true;
      });
      await waitFor(() => rec.calls.length === 1, 10_000, 'handler called');
      await sleep(SETTLE_MS);
      if (harness!.ackMeansCommitted) expect(acked).toBe(false);
      release();
      await append;
      expect(acked).toBe(true);
      if (harness!.ackMeansCommitted) expect(rec.committed().map(keyOf)).toEqual(['acme/a/1']);
    });

    it('stop() finishes the in-flight batch; a later consumer gets only what was not committed', async () => {
      const log = await open();
      const rec = recorder();
      const release = rec.hold();
      consumer = log.consume(rec.handler, { maxBatch: 10, maxWaitMs: 5, retryMs: 20 });
      const first = log.append(msg('a', 1));
      first.catch(() => undefined);
      await waitFor(() => rec.calls.length === 1, 10_000, 'handler called');
      let stopped = false;
      const stopping = consumer.stop().then(() => {
        stopped = true;
      });
      await sleep(SETTLE_MS);
      expect(stopped).toBe(false);
      release();
      await stopping;
      await first;
      expect(rec.committed().map(keyOf)).toEqual(['acme/a/1']);
      const second = log.append(msg('a', 2));
      second.catch(() => undefined);
      await sleep(SETTLE_MS);
      expect(rec.calls).toHaveLength(1);
      const next = recorder();
      consumer = log.consume(next.handler, { maxBatch: 10, maxWaitMs: 5, retryMs: 20 });
      await second;
      await waitFor(() => next.committed().length >= 1, 10_000, 'second consumer delivery');
      expect(next.committed().map(keyOf)).toEqual(['acme/a/2']);
    });

    it("uncommitted: the room's wanted seqs not committed yet, pending or in a handler; none once committed", async () => {
      const log = await open();
      const sent = [...[1, 2, 3, 4, 5].map((i) => msg('a', i)), msg('b', 2), msg('b', 4)];
      const appends = Promise.all(sent.map((m) => log.append(m)));
      appends.catch(() => undefined);
      await waitFor(() => log.lag().messages === sent.length, 10_000, 'every message pending');
      const seqsOf = (ms: RoomMessage[]): number[] => ms.map((m) => m.seq).sort((x, y) => x - y);
      const a = { tenant: 'acme', room: 'a' };
      const pending = await log.uncommitted(a, [2, 4, 9]);
      expect(seqsOf(pending)).toEqual([2, 4]);
      expect(pending.every((m) => m.room === 'a' && m.tenant === 'acme')).toBe(true);
      expect(pending.find((m) => m.seq === 2)).toEqual(msg('a', 2));
      expect(await log.uncommitted(a, [])).toEqual([]);
      expect(await log.uncommitted({ tenant: 'other', room: 'a' }, [1, 2])).toEqual([]);
      // Delivered to a handler that has not resolved (a writer killed mid-batch looks the same): still uncommitted.
      const rec = recorder();
      const release = rec.hold();
      consumer = log.consume(rec.handler, { maxBatch: 3, maxWaitMs: 5, retryMs: 20 });
      await waitFor(() => rec.calls.length === 1, 10_000, 'handler called');
      expect(seqsOf(await log.uncommitted(a, [1, 2, 3, 4, 5]))).toEqual([1, 2, 3, 4, 5]);
      release();
      await appends;
      await waitFor(() => rec.committed().length >= sent.length, 10_000, 'every message committed');
      await waitFor(async () => (await log.uncommitted(a, [1, 2, 3, 4, 5])).length === 0, 10_000, 'nothing uncommitted once committed', 50);
      await log.close();
      await expect(log.uncommitted(a, [1])).rejects.toThrow();
    });

    it('is healthy while open; after close, append rejects (never a false ack)', async () => {
      const log = await open();
      expect(log.health().ok).toBe(true);
      expect(typeof log.kind).toBe('string');
      await log.close();
      expect(log.health().ok).toBe(false);
      await expect(log.append(msg('a', 1))).rejects.toMatchObject({ name: 'EngineError', engine: 'durablelog', code: 'closed' });
    });
  });
}
