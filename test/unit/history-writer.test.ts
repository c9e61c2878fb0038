/**
 * HistoryWriter over the real in-process DurableLog (MemoryDurableLog, whose `append` resolves once
 * the writer committed the message) and a real SQLite store (the embedded default) behind a wrapper that can
 * fail inserts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import { HistoryWriter } from '../../src/engines/messagestore/history-writer.js';
import type { HistoryPage, HistoryQuery, MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { openSqliteStore } from '../../src/engines/messagestore/sqlite.js';
import type { RoomMessage, RoomPosition, RoomRef } from '../../src/engines/types.js';
import { sqliteWorkerUrl } from '../helpers/sqlite-worker.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** Delegates to a real store; `failNext(n, when)` makes the next n inserts reject before or after writing. */
class FlakyStore implements MessageStore {
  readonly kind = 'flaky';
  /** Batches the inner store accepted (including ones whose success was then hidden). */
  readonly written: RoomMessage[][] = [];
  attempts = 0;
  private failures = 0;
  private when: 'before' | 'after' = 'before';

  constructor(private readonly inner: MessageStore) {}

  failNext(n: number, when: 'before' | 'after' = 'before'): void {
    this.failures = n;
    this.when = when;
  }

  async insert(batch: readonly RoomMessage[]): Promise<void> {
    this.attempts += 1;
    const fail = this.failures > 0;
    if (fail) this.failures -= 1;
    if (fail && this.when === 'before') throw new Error('database unavailable (test)');
    await this.inner.insert(batch);
    this.written.push([...batch]);
    if (fail) throw new Error('connection lost after commit (test)');
  }

  page(ref: RoomRef, query: HistoryQuery): Promise<HistoryPage> {
    return this.inner.page(ref, query);
  }

  position(ref: RoomRef): Promise<RoomPosition | null> {
    return this.inner.position(ref);
  }

  health(): { ok: boolean; detail?: string } {
    return this.inner.health();
  }

  close(): Promise<void> {
    return Promise.resolve(); // the shared inner store is closed by afterAll
  }
}

describe('HistoryWriter', () => {
  let inner: MessageStore;
  let rooms = 0;
  const open: { log: MemoryDurableLog; writer: HistoryWriter }[] = [];
  const fresh = (tenant = 'acme'): RoomRef => ({ tenant, room: `w-${++rooms}` });
  const msg = (ref: RoomRef, seq: number): RoomMessage => ({ ...ref, seq, epoch: 'E', from: 'u', ts: 1_700_000_000_000 + seq, data: { seq, room: ref.room } });
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const setup = (store: MessageStore, hooks: ConstructorParameters<typeof HistoryWriter>[2] = {}) => {
    const log = new MemoryDurableLog();
    const writer = new HistoryWriter(log, store, { maxBatch: 50, maxWaitMs: 1, retryMs: 5, ...hooks });
    open.push({ log, writer });
    return { log, writer };
  };
  /** Every stored message of a room, oldest first. */
  const stored = async (ref: RoomRef): Promise<RoomMessage[]> => {
    const out: RoomMessage[] = [];
    let after = 0;
    for (;;) {
      const page = await inner.page(ref, { after, limit: 1000 });
      out.push(...page.messages);
      if (!page.more) return out;
      after = page.messages[page.messages.length - 1]!.seq;
    }
  };

  beforeAll(async () => {
    inner = await openSqliteStore('memory://', { workerUrl: await sqliteWorkerUrl() });
  });
  afterEach(async () => {
    for (const { writer, log } of open.splice(0)) {
      await writer.stop();
      await log.close();
    }
  });
  afterAll(async () => {
    await inner.close();
  });

  it('writes every appended message, in append order per room; an append resolves once its message is stored', async () => {
    const store = new FlakyStore(inner);
    const written: number[] = [];
    const { log, writer } = setup(store, { onWritten: (n) => written.push(n) });
    writer.start();
    writer.start(); // idempotent
    const refs = [fresh(), fresh(), fresh('other')];
    const appends: Promise<void>[] = [];
    for (let seq = 1; seq <= 100; seq++) {
      for (const ref of refs) appends.push(log.append(msg(ref, seq)));
    }
    const probe = refs[0]!;
    await log.append(msg(probe, 101));
    expect(await inner.position(probe)).toEqual({ seq: 101, epoch: 'E' });
    await Promise.all(appends);

    for (const ref of refs) {
      expect(await stored(ref)).toEqual(range(1, ref === probe ? 101 : 100).map((s) => msg(ref, s)));
      const delivered = store.written.flat().filter((m) => m.room === ref.room && m.tenant === ref.tenant);
      expect(delivered.map((m) => m.seq)).toEqual(range(1, ref === probe ? 101 : 100));
    }
    const stats = writer.stats();
    expect(stats).toMatchObject({ running: true, messages: 301, failures: 0, lag: { messages: 0, oldestMs: 0 } });
    expect(stats.batches).toBe(store.written.length);
    expect(stats.batches).toBeGreaterThanOrEqual(Math.ceil(301 / 50));
    expect(store.written.every((b) => b.length <= 50)).toBe(true);
    expect(written.reduce((a, b) => a + b, 0)).toBe(301);
  });

  it('retries after store failures (before and after commit): every message ends up stored exactly once', async () => {
    const store = new FlakyStore(inner);
    /** At each failure: the error, how many appends had been acked, the log's backlog. */
    const failures: { error: unknown; acked: number; lag: number }[] = [];
    let acked = 0;
    const { log, writer } = setup(store, {
      onFailure: (error) => failures.push({ error, acked, lag: log.lag().messages }),
    });
    const a = fresh();
    const b = fresh('other');
    store.failNext(3, 'before');
    writer.start();

    const appends = range(1, 120).flatMap((seq) => [a, b].map((ref) => log.append(msg(ref, seq)).then(() => void acked++)));
    await waitFor(() => failures.length >= 1, 5_000, 'the first failure');
    expect(writer.stats().lastError).toMatch(/database unavailable/);
    await waitFor(() => acked > 0, 5_000, 'the first ack after the outage');

    // The insert commits but the reply is lost: the retry must not store anything twice.
    store.failNext(2, 'after');
    const more = range(121, 200).flatMap((seq) => [a, b].map((ref) => log.append(msg(ref, seq))));
    await Promise.all([...appends, ...more]);

    for (const ref of [a, b]) {
      const rows = await stored(ref);
      expect(rows.map((m) => m.seq)).toEqual(range(1, 200));
      expect(rows).toEqual(range(1, 200).map((s) => msg(ref, s)));
    }
    // Some messages really were written twice by the retries after a lost reply.
    const keys = store.written.flat().map((m) => `${m.tenant}/${m.room}/${m.seq}`);
    expect(keys.length).toBeGreaterThan(new Set(keys).size);
    const stats = writer.stats();
    expect(stats.failures).toBe(5);
    expect(failures).toHaveLength(5);
    // Nothing was acked while the store refused (acked means stored), and the backlog was all of it.
    expect(failures.slice(0, 3).map((f) => [f.acked, f.lag])).toEqual([
      [0, 240],
      [0, 240],
      [0, 240],
    ]);
    expect(failures.every((f) => f.error instanceof Error)).toBe(true);
    expect(stats.lastError).toBeUndefined();
    expect(stats.lag).toEqual({ messages: 0, oldestMs: 0 });
    expect(store.attempts).toBe(stats.batches + stats.failures);
    expect(inner.health().ok).toBe(true);
  });

  it('stop lets the batch in flight finish; messages appended while stopped are written after start', async () => {
    const store = new FlakyStore(inner);
    const { log, writer } = setup(store);
    const ref = fresh();
    writer.start();
    await log.append(msg(ref, 1));
    await writer.stop();
    expect(writer.stats().running).toBe(false);

    let acked = false;
    const pending = log.append(msg(ref, 2)).then(() => {
      acked = true;
    });
    await sleep(30);
    expect(acked).toBe(false);
    expect(writer.stats().lag.messages).toBe(1);
    expect(await inner.position(ref)).toEqual({ seq: 1, epoch: 'E' });

    writer.start();
    await pending;
    expect((await stored(ref)).map((m) => m.seq)).toEqual([1, 2]);
    expect(writer.stats()).toMatchObject({ running: true, batches: 2, messages: 2 });
  });

  it('start throws when the log already has a consumer', () => {
    const { log } = setup(new FlakyStore(inner));
    const first = new HistoryWriter(log, inner);
    first.start();
    open.push({ log, writer: first });
    expect(() => new HistoryWriter(log, inner).start()).toThrow(/consumer/);
  });
});
