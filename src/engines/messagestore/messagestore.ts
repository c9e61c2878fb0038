import type { RoomMessage, RoomPosition, RoomRef } from '../types.js';

export interface HistoryQuery {
  /** Only messages with seq < before (newest page when absent). */
  readonly before?: number;
  /** Only messages with seq > after (oldest-first paging; exclusive with `before`). */
  readonly after?: number;
  /** 1..1000. */
  readonly limit: number;
}

export interface HistoryPage {
  /** Ascending seq order. */
  readonly messages: RoomMessage[];
  /** True when older (for `before`) or newer (for `after`) messages exist beyond this page. */
  readonly more: boolean;
}

/**
 * MessageStore: permanent, paginated room history.
 *
 * Contract (test/conformance/messagestore.suite.ts):
 * - `insert` is idempotent on (tenant, room, seq): a row already present is left as is (ON CONFLICT
 *   DO NOTHING), so a batch may be retried whole after a partial failure.
 * - `page` returns messages of exactly one tenant's room in ascending seq order; with `before` the
 *   newest `limit` messages below it, with `after` the oldest `limit` above it, with neither the newest.
 *   `more` tells whether messages exist beyond the page in that direction. A `limit` outside 1..1000,
 *   or both `before` and `after`, is rejected.
 * - `position` returns the highest stored seq and its epoch, or null for a room never stored.
 * - Data survives `close()` and reopening on the same storage.
 * - `close()` is idempotent; after it `health()` is not ok and every operation rejects.
 */
export interface MessageStore {
  readonly kind: string;
  insert(batch: readonly RoomMessage[]): Promise<void>;
  page(ref: RoomRef, query: HistoryQuery): Promise<HistoryPage>;
  position(ref: RoomRef): Promise<RoomPosition | null>;
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}
