/**
 * HistoryWriter: moves every message from the DurableLog into the MessageStore (ARCHITECTURE.md §4 step 6).
 *
 * It is the log's consumer: each batch the log delivers is passed to `store.insert` whole, and the log
 * counts it committed only when the insert resolved. A failed insert is retried by the log (the same
 * batch, with backoff, nothing later in the room first); the store's idempotent insert makes those
 * retries, and redeliveries after a crash, store every message exactly once.
 */
import type { ConsumeOptions, DurableConsumer, DurableLog } from '../durablelog/durablelog.js';
import type { RoomMessage } from '../types.js';
import type { MessageStore } from './messagestore.js';

export interface HistoryWriterOptions extends ConsumeOptions {
  /** Called after each batch the store accepted, e.g. to count `switchboard_history_written_total`. */
  onWritten?: (messages: number) => void;
  /** Called after each failed insert (the log retries the batch), e.g. to count failures and log. */
  onFailure?: (error: unknown, batchSize: number) => void;
}

export interface HistoryWriterStats {
  readonly running: boolean;
  /** Batches the store accepted. */
  readonly batches: number;
  /** Messages in those batches (a batch redelivered after a failure counts once, when it succeeds). */
  readonly messages: number;
  /** Inserts that rejected (each is retried by the log). */
  readonly failures: number;
  /** The most recent failure's message; cleared by the next successful batch. */
  readonly lastError?: string;
  /** The log's backlog: messages not yet in the store and the age of the oldest, ms. */
  readonly lag: { messages: number; oldestMs: number };
}

export class HistoryWriter {
  private consumer: DurableConsumer | undefined;
  private batches = 0;
  private messages = 0;
  private failures = 0;
  private lastError: string | undefined;

  constructor(
    private readonly log: DurableLog,
    private readonly store: MessageStore,
    private readonly options: Partial<HistoryWriterOptions> = {},
  ) {}

  /** Attaches to the log as its consumer; does nothing if already started. Throws if the log refuses (closed, or another consumer). */
  start(): void {
    if (this.consumer !== undefined) return;
    const { onWritten: _w, onFailure: _f, ...consume } = this.options;
    this.consumer = this.log.consume((batch) => this.write(batch), consume);
  }

  /** Detaches from the log after the batch in flight (if any) has finished; the writer can be started again. */
  async stop(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = undefined;
    await consumer?.stop();
  }

  stats(): HistoryWriterStats {
    return {
      running: this.consumer !== undefined,
      batches: this.batches,
      messages: this.messages,
      failures: this.failures,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      lag: this.log.lag(),
    };
  }

  private async write(batch: RoomMessage[]): Promise<void> {
    try {
      await this.store.insert(batch);
    } catch (error) {
      this.failures += 1;
      this.lastError = error instanceof Error ? error.message : String(error);
      this.options.onFailure?.(error, batch.length);
      throw error;
    }
    this.batches += 1;
    this.messages += batch.length;
    this.lastError = undefined;
    try {
      this.options.onWritten?.(batch.length);
    } catch {
      // A metrics hook must not turn a stored batch into a failed (and redelivered) one.
    }
  }
}
