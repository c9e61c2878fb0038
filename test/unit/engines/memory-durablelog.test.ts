/** Behaviour of the in-process DurableLog beyond the shared contract. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_RETRY_MS, MemoryDurableLog } from '../../../src/engines/durablelog/memory.js';
import type { RoomMessage } from '../../../src/engines/types.js';
import { waitFor } from '../../helpers/wait.js';

const msg = (seq: number): RoomMessage => ({ tenant: 'acme', room: 'a', seq, epoch: 'E', from: 'u', ts: seq, data: seq });

describe('MemoryDurableLog', () => {
  const logs: MemoryDurableLog[] = [];
  const open = (...args: ConstructorParameters<typeof MemoryDurableLog>): MemoryDurableLog => {
    const log = new MemoryDurableLog(...args);
    logs.push(log);
    return log;
  };
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(logs.splice(0).map((l) => l.close()));
  });

  it('rejects appends beyond maxPending; a pending duplicate does not count', async () => {
    const log = open({ maxPending: 2 });
    const pending = [log.append(msg(1)), log.append(msg(2)), log.append(msg(1))];
    for (const p of pending) p.catch(() => undefined);
    await expect(log.append(msg(3))).rejects.toThrow(/durable log is full/);
    expect(log.lag().messages).toBe(2);
  });

  it('holds appends until a consumer commits them, and rejects them on close', async () => {
    const log = open();
    let acked = false;
    const first = log.append(msg(1)).then(() => {
      acked = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(acked).toBe(false);
    const consumer = log.consume(async () => undefined, { maxWaitMs: 1 });
    await first;
    await consumer.stop();
    const orphan = log.append(msg(2));
    await log.close();
    await expect(orphan).rejects.toThrow(/closed/);
    await expect(log.append(msg(3))).rejects.toThrow(/closed/);
    expect(log.health()).toEqual({ ok: false, detail: 'closed' });
  });

  it('allows one consumer at a time', async () => {
    const log = open();
    const first = log.consume(async () => undefined);
    expect(() => log.consume(async () => undefined)).toThrow(/already has a consumer/);
    await first.stop();
    const second = log.consume(async () => undefined);
    await second.stop();
  });

  it('reports the age of the oldest pending message on its clock', async () => {
    let clock = 1000;
    const log = open({}, () => clock);
    const p = log.append(msg(1));
    p.catch(() => undefined);
    clock += 250;
    expect(log.lag()).toEqual({ messages: 1, oldestMs: 250 });
  });

  it('doubles the retry delay up to 30 s and reports every failure', async () => {
    vi.useFakeTimers();
    const retries: [number, number][] = [];
    const log = open({ onRetry: (_error, attempt, delayMs) => retries.push([attempt, delayMs]) });
    let calls = 0;
    const consumer = log.consume(
      async () => {
        calls += 1;
        throw new Error('db down');
      },
      { maxWaitMs: 1, retryMs: 10_000 },
    );
    log.append(msg(1)).catch(() => undefined);
    await vi.advanceTimersByTimeAsync(1 + 10_000 + 20_000 + MAX_RETRY_MS + MAX_RETRY_MS);
    expect(calls).toBe(5);
    expect(retries).toEqual([
      [1, 10_000],
      [2, 20_000],
      [3, 30_000],
      [4, 30_000],
      [5, 30_000],
    ]);
    const stopping = consumer.stop();
    await vi.advanceTimersByTimeAsync(0);
    await stopping;
    expect(log.lag().messages).toBe(1);
  });

  it('delivers a message appended again after its commit only once', async () => {
    const log = open();
    const seen: number[] = [];
    const consumer = log.consume(async (batch) => void seen.push(...batch.map((m) => m.seq)), { maxWaitMs: 1 });
    await log.append(msg(1));
    await log.append(msg(1));
    await log.append(msg(2));
    await waitFor(() => seen.length === 2, 1_000);
    expect(seen).toEqual([1, 2]);
    await consumer.stop();
  });
});
