/**
 * Holes in permanent history, and how a read gets past them. With JetStream in front of the MessageStore,
 * PostgreSQL lacks some acked messages for a while: a killed history writer's batch until JetStream
 * redelivers it (the ack wait), batches that parallel writers commit out of order. A history read
 * (`history.ts`) or a recovery from the store (`recovery.ts`) that finds seqs missing between the ends of
 * the run it serves completes the run here, so it never skips an acked seq:
 *
 * 1. The durable log's uncommitted messages with those seqs (`DurableLog.uncommitted`: JetStream's
 *    messages above the writers' ack floor; the in-process log's pending queue).
 * 2. Seqs still missing: the store again, read after step 1 (committed in between).
 * 3. Seqs found nowhere were never acked (the publish failed; it may still be retried with its idem,
 *    stored then, and served from then on), and the run is served without them, unless a message after
 *    them is younger than `settleMs` (the publish timeout plus a margin): such a publish may still be in
 *    flight, so the read is refused `unavailable` (retryable) rather than served with a hole.
 * Failures of steps 1–2 and more than MAX_MISSING missing seqs (history far behind) are `unavailable`.
 * Each read that met a hole is counted in `switchboard_history_holes_total{result}` and logged.
 */
import type { DurableLog } from '../engines/durablelog/durablelog.js';
import type { MessageStore } from '../engines/messagestore/messagestore.js';
import type { RoomMessage, RoomRef } from '../engines/types.js';
import { SwitchboardError } from '../protocol/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export type HoleResult = 'filled' | 'skipped' | 'unavailable';

export interface HoleFilling {
  readonly store: MessageStore;
  readonly durableLog: DurableLog;
  /** A seq found nowhere counts as never acked once the next stored message is older than this, ms. */
  readonly settleMs: number;
  /** Told once per read that met a hole: the result and how many seqs were missing. */
  readonly onHole?: (ref: RoomRef, result: HoleResult, missing: number, error?: unknown) => void;
  readonly now?: () => number;
}

/** Most missing seqs one read looks up; beyond it history is far behind: `unavailable`. */
export const MAX_MISSING = 10_000;

/** Margin over the publish timeout before a seq found nowhere counts as never acked (clock skew), ms. */
const SETTLE_MARGIN_MS = 2_000;

/** The hole filling of a node: its engines, its publish timeout, and its metric and log. */
export function nodeHoleFilling(o: {
  store: MessageStore;
  durableLog: DurableLog;
  publishTimeoutMs: number;
  metrics: Pick<Metrics, 'historyHoles'>;
  log: Logger;
}): HoleFilling {
  return {
    store: o.store,
    durableLog: o.durableLog,
    settleMs: o.publishTimeoutMs + SETTLE_MARGIN_MS,
    onHole: (ref, result, missing, error) => {
      o.metrics.historyHoles.inc({ result });
      const fields = { tenant: ref.tenant, room: ref.room, missing, ...(error !== undefined ? { err: error } : {}) };
      if (result === 'unavailable') o.log.warn(fields, 'history has a hole it cannot fill yet; read refused (retryable)');
      else o.log.debug(fields, result === 'filled' ? 'history hole filled from the durable log' : 'history skips seqs that were never acked');
    },
  };
}

/**
 * Completes `have` (messages by seq) over [lo, hi] in place, as the header says. Resolves when every seq
 * of the range is in `have` or was never acked; throws SwitchboardError `unavailable` otherwise.
 */
export async function fillHoles(f: HoleFilling, ref: RoomRef, have: Map<number, RoomMessage>, lo: number, hi: number): Promise<void> {
  const missing: number[] = [];
  for (let seq = Math.max(1, lo); seq <= hi && missing.length <= MAX_MISSING; seq++) if (!have.has(seq)) missing.push(seq);
  if (missing.length === 0) return;
  const refuse = (why: string, error?: unknown): never => {
    f.onHole?.(ref, 'unavailable', missing.length, error);
    throw new SwitchboardError(
      'unavailable',
      `history of ${ref.room} is catching up (${why}); retry shortly`,
      error !== undefined ? { cause: error } : undefined,
    );
  };
  if (missing.length > MAX_MISSING) refuse(`more than ${MAX_MISSING} seqs are not stored yet`);
  let still: number[];
  try {
    for (const m of await f.durableLog.uncommitted(ref, missing)) if (m.seq >= lo && m.seq <= hi && !have.has(m.seq)) have.set(m.seq, m);
    still = missing.filter((seq) => !have.has(seq));
    if (still.length > 0) await readStored(f.store, ref, still, have);
  } catch (err) {
    return refuse('the durable log or the store did not answer', err);
  }
  still = still.filter((seq) => !have.has(seq));
  if (still.length === 0) {
    f.onHole?.(ref, 'filled', missing.length);
    return;
  }
  // The youngest message after a seq found nowhere says whether that publish may still be in flight.
  const newestMissing = still[still.length - 1]!;
  let next: RoomMessage | undefined;
  for (const [seq, m] of have) if (seq > newestMissing && (next === undefined || seq < next.seq)) next = m;
  if (next !== undefined && (f.now ?? Date.now)() - next.ts < f.settleMs) {
    refuse(`seqs ${still[0]}–${newestMissing} are not stored yet and may still be in flight`);
  }
  f.onHole?.(ref, 'skipped', still.length);
}

/** Reads the stored messages with the given seqs (ascending) into `have`. */
async function readStored(store: MessageStore, ref: RoomRef, seqs: number[], have: Map<number, RoomMessage>): Promise<void> {
  const wanted = new Set(seqs);
  const last = seqs[seqs.length - 1]!;
  let after = seqs[0]! - 1;
  while (after < last) {
    const page = await store.page(ref, { after, limit: Math.min(1000, last - after) });
    for (const m of page.messages) if (wanted.has(m.seq)) have.set(m.seq, m);
    if (page.messages.length === 0) return;
    after = page.messages[page.messages.length - 1]!.seq;
    if (!page.more) return;
  }
}
