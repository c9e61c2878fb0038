/**
 * DeferredStore: a MessageStore whose database may not be reachable yet. A cluster node must start and
 * serve live traffic while PostgreSQL is down (history degraded, not the node): messages are safe in
 * the durable log meanwhile, and the history writer catches up once the database is back.
 *
 * Behaviour:
 * - `open()` is tried at once and then again in the background, with backoff from `retryMs` doubling to
 *   `maxRetryMs`, until it succeeds (it connects and runs the migrations) or the store is closed.
 * - Until then every operation rejects with StoreUnavailableError naming the last failure (the history
 *   writer retries its batch; the API answers 503 and the protocol `unavailable`), and `health()` is not
 *   ok with that failure. Once open, everything is delegated to the opened store.
 */
import type { RoomMessage, RoomPosition, RoomRef } from '../types.js';
import type { HistoryPage, HistoryQuery, MessageStore } from './messagestore.js';
import { EngineError } from '../errors.js';

export class StoreUnavailableError extends Error {
  constructor(detail: string) {
    super(`history database unavailable: ${detail}`);
    this.name = 'StoreUnavailableError';
  }
}

export interface DeferredStoreOptions {
  /** First retry delay, ms (default 500). */
  retryMs: number;
  /** Longest retry delay, ms (default 10,000). */
  maxRetryMs: number;
  /** Told about every failed attempt, e.g. to log it. */
  onAttemptFailed?: (error: unknown, attempt: number, nextDelayMs: number) => void;
  /** Told once the store is open. */
  onOpen?: () => void;
}

export class DeferredStore implements MessageStore {
  readonly kind: string;
  private store: MessageStore | undefined;
  private failure = 'connecting';
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly options: DeferredStoreOptions;
  /** Resolves when the first attempt has finished (successfully or not). */
  readonly firstAttempt: Promise<void>;

  constructor(
    kind: string,
    private readonly open: () => Promise<MessageStore>,
    options: Partial<DeferredStoreOptions> = {},
  ) {
    this.kind = kind;
    this.options = { retryMs: options.retryMs ?? 500, maxRetryMs: options.maxRetryMs ?? 10_000, ...options };
    this.firstAttempt = this.attempt(1, this.options.retryMs);
  }

  /** True once the database was reached and migrated. */
  get isOpen(): boolean {
    return this.store !== undefined;
  }

  insert(batch: readonly RoomMessage[]): Promise<void> {
    return this.current().insert(batch);
  }

  page(ref: RoomRef, query: HistoryQuery): Promise<HistoryPage> {
    return this.current().page(ref, query);
  }

  position(ref: RoomRef): Promise<RoomPosition | null> {
    return this.current().position(ref);
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'closed' };
    return this.store?.health() ?? { ok: false, detail: `not connected: ${this.failure}` };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.store?.close();
  }

  private current(): MessageStore {
    if (this.closed) throw new EngineError('messagestore', 'closed', `message store (${this.kind}) is closed`);
    if (this.store === undefined) throw new StoreUnavailableError(this.failure);
    return this.store;
  }

  private async attempt(n: number, delay: number): Promise<void> {
    if (this.closed) return;
    try {
      const store = await this.open();
      if (this.closed) {
        await store.close();
        return;
      }
      this.store = store;
      this.options.onOpen?.();
    } catch (error) {
      this.failure = error instanceof Error ? error.message : String(error);
      this.options.onAttemptFailed?.(error, n, delay);
      if (this.closed) return;
      this.timer = setTimeout(() => void this.attempt(n + 1, Math.min(delay * 2, this.options.maxRetryMs)), delay);
      this.timer.unref();
    }
  }
}
