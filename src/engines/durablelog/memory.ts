import type { RoomMessage, RoomRef } from '../types.js';
import type { ConsumeOptions, DurableConsumer, DurableLog } from './durablelog.js';
import { EngineError } from '../errors.js';

export interface MemoryDurableLogOptions {
  /** Most messages waiting for the consumer; `append` beyond it rejects ("durable log is full"). Default 100000. */
  maxPending: number;
  /** A committed (tenant, room, seq) appended again within this many ms is not delivered again. Default 120000. */
  dedupeMs: number;
  /** Told about every failed handler call before its retry (the batch stays pending). Default: none. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

export const defaultConsumeOptions: ConsumeOptions = { maxBatch: 500, maxWaitMs: 20, retryMs: 200, maxRetryMs: 30_000 };

/** Longest delay between retries of a failing batch, ms (the default of `maxRetryMs`). */
export const MAX_RETRY_MS = 30_000;

/** One appended message waiting for its commit, and every `append` call waiting on it. */
interface Pending {
  readonly key: string;
  readonly message: RoomMessage;
  readonly at: number;
  readonly waiters: { resolve: () => void; reject: (error: Error) => void }[];
}

/** A one-shot wake-up signal: `wait(ms)` resolves on `wake()` or after `ms` (if given). */
export class Signal {
  private wakeUp: (() => void) | undefined;

  wait(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}

function keyOf(m: RoomMessage): string {
  return `${m.tenant}/${m.room}/${m.seq}`;
}

/**
 * MemoryDurableLog: the embedded DurableLog, an in-process queue in front of the consumer that
 * writes the MessageStore. "Durable" means committed by the attached consumer: `append` resolves
 * only after a handler call containing the message resolved, so an acked message is in the
 * MessageStore. Without a consumer appends wait; `close()` rejects them.
 *
 * - Pending messages are delivered in append order, in batches of at most `maxBatch`, after waiting
 *   up to `maxWaitMs` for a batch to fill.
 * - A batch whose handler rejects is delivered again, unchanged, after `retryMs`, doubling up to 30 s;
 *   nothing later is delivered before it succeeds, and its appends stay pending meanwhile.
 * - The same (tenant, room, seq) appended while pending, or within `dedupeMs` after its commit, is
 *   stored once: the later `append` resolves with the first one's commit.
 * - At most `maxPending` messages wait; beyond that `append` rejects at once.
 * - One consumer at a time; `stop()` lets the in-flight handler call finish (and commit) first.
 * - `uncommitted` looks the seqs up among the pending messages (an acked message is already committed).
 */
export class MemoryDurableLog implements DurableLog {
  readonly kind = 'memory';
  private readonly options: MemoryDurableLogOptions;
  private readonly now: () => number;
  /** Pending entries in append order; entries before `head` are already committed. */
  private queue: Pending[] = [];
  private head = 0;
  private readonly byKey = new Map<string, Pending>();
  /** Recently committed keys -> commit time, oldest first. */
  private readonly committed = new Map<string, number>();
  /** Woken by every new pending message. */
  private readonly arrived = new Signal();
  private consumer: MemoryConsumer | undefined;
  private closed = false;

  constructor(options: Partial<MemoryDurableLogOptions> = {}, now: () => number = Date.now) {
    this.options = {
      maxPending: options.maxPending ?? 100_000,
      dedupeMs: options.dedupeMs ?? 120_000,
      ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
    };
    this.now = now;
  }

  append(message: RoomMessage): Promise<void> {
    if (this.closed) return Promise.reject(new EngineError('durablelog', 'closed', 'durable log is closed'));
    const key = keyOf(message);
    this.pruneCommitted();
    if (this.committed.has(key)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const existing = this.byKey.get(key);
      if (existing !== undefined) {
        existing.waiters.push({ resolve, reject });
        return;
      }
      if (this.pendingCount() >= this.options.maxPending) {
        reject(new EngineError('durablelog', 'full', `durable log is full (${this.options.maxPending} messages pending)`));
        return;
      }
      const entry: Pending = { key, message, at: this.now(), waiters: [{ resolve, reject }] };
      this.queue.push(entry);
      this.byKey.set(key, entry);
      this.arrived.wake();
    });
  }

  consume(handler: (batch: RoomMessage[]) => Promise<void>, options: Partial<ConsumeOptions> = {}): DurableConsumer {
    if (this.closed) throw new EngineError('durablelog', 'closed', 'durable log is closed');
    if (this.consumer !== undefined) throw new EngineError('durablelog', 'invalid', 'durable log already has a consumer');
    const source: BatchSource = {
      pending: () => this.pendingCount(),
      peek: (max) => this.queue.slice(this.head, this.head + max).map((entry) => entry.message),
      commit: (count) => this.commit(count),
      arrived: this.arrived,
      ...(this.options.onRetry === undefined ? {} : { onRetry: this.options.onRetry }),
    };
    const consumer = new MemoryConsumer(source, handler, { ...defaultConsumeOptions, ...options }, () => {
      if (this.consumer === consumer) this.consumer = undefined;
    });
    this.consumer = consumer;
    return consumer;
  }

  lag(): { messages: number; oldestMs: number } {
    const oldest = this.queue[this.head];
    return { messages: this.pendingCount(), oldestMs: oldest === undefined ? 0 : Math.max(0, this.now() - oldest.at) };
  }

  /** The pending (appended, not yet committed) messages of the room with one of `seqs`. */
  uncommitted(ref: RoomRef, seqs: readonly number[]): Promise<RoomMessage[]> {
    if (this.closed) return Promise.reject(new EngineError('durablelog', 'closed', 'durable log is closed'));
    const out: RoomMessage[] = [];
    for (const seq of seqs) {
      const entry = this.byKey.get(`${ref.tenant}/${ref.room}/${seq}`);
      if (entry !== undefined) out.push(entry.message);
    }
    return Promise.resolve(out);
  }

  health(): { ok: boolean; detail?: string } {
    return this.closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  /** Stops the consumer (after its in-flight batch) and rejects every append still waiting. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.consumer?.stop();
    const error = new EngineError('durablelog', 'unavailable', 'durable log closed before the message was committed');
    for (let i = this.head; i < this.queue.length; i++) {
      for (const waiter of this.queue[i]?.waiters ?? []) waiter.reject(error);
    }
    this.queue = [];
    this.head = 0;
    this.byKey.clear();
  }

  private pendingCount(): number {
    return this.queue.length - this.head;
  }

  /** Marks the first `count` pending messages committed and resolves their appends. */
  private commit(count: number): void {
    const now = this.now();
    const done = this.queue.slice(this.head, this.head + count);
    this.head += done.length;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    for (const entry of done) {
      this.byKey.delete(entry.key);
      this.committed.set(entry.key, now);
      for (const waiter of entry.waiters) waiter.resolve();
    }
    this.pruneCommitted();
  }

  private pruneCommitted(): void {
    const now = this.now();
    for (const [key, at] of this.committed) {
      if (this.committed.size <= this.options.maxPending && now - at <= this.options.dedupeMs) break;
      this.committed.delete(key);
    }
  }
}

/** What a consumer sees of its log. */
interface BatchSource {
  pending(): number;
  /** The first `max` pending messages, in append order. */
  peek(max: number): RoomMessage[];
  /** The first `count` pending messages are in the store. */
  commit(count: number): void;
  readonly arrived: Signal;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** The consumer loop of a MemoryDurableLog: wait, batch, hand over, commit or retry. */
class MemoryConsumer implements DurableConsumer {
  private stopped = false;
  /** Woken only by `stop()`: retry delays are not cut short by new appends. */
  private readonly stopping = new Signal();
  private readonly done: Promise<void>;

  constructor(
    private readonly source: BatchSource,
    private readonly handler: (batch: RoomMessage[]) => Promise<void>,
    private readonly options: ConsumeOptions,
    onStopped: () => void,
  ) {
    this.done = this.run().finally(onStopped);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.source.arrived.wake();
    this.stopping.wake();
    await this.done;
  }

  private async run(): Promise<void> {
    const { maxBatch, maxWaitMs } = this.options;
    const { source } = this;
    while (!this.stopped) {
      if (source.pending() === 0) {
        await source.arrived.wait();
        continue;
      }
      // Give the batch up to maxWaitMs to fill; every append wakes us to re-check.
      const deadline = Date.now() + maxWaitMs;
      while (!this.stopped && source.pending() < maxBatch && Date.now() < deadline) {
        await source.arrived.wait(deadline - Date.now());
      }
      if (this.stopped) return;
      const batch = source.peek(maxBatch);
      let delay = this.options.retryMs;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.handler([...batch]);
          source.commit(batch.length);
          break;
        } catch (error) {
          if (this.stopped) return;
          source.onRetry?.(error, attempt, delay);
          await this.stopping.wait(delay);
          delay = Math.min(delay * 2, this.options.maxRetryMs);
          if (this.stopped) return;
        }
      }
    }
  }
}
