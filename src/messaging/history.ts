/**
 * History reads for the HTTP API and the protocol's `history` request (and so the SDK's `history` and
 * `reloadFromHistory`): permanent history in the MessageStore, with the RoomLog's recent window for the
 * newest messages. With JetStream in front of the store, PostgreSQL may lack acked messages for a while
 * (writer lag, a killed writer's batch until its redelivery, batches committed out of order, the
 * database down); a page is never served with a hole for all that:
 *
 * - Newest page / `before`: the wanted seqs end at hi = min(before-1, room position). The window's run
 *   ending at hi is used as is; the older rest comes from the store. A page the window covers whole is
 *   served even while the store is down.
 * - `after`: the store's page merged with the window's messages, up to min(after+limit, position).
 * - Every seq between the page's ends, between the page and its cursor (the page next to it) and, for a
 *   page that says there is nothing beyond it, between it and the room's first seq or position, is
 *   checked: what the store and the window lack is filled from the durable log, or the seq is shown to
 *   have never been acked, or the read is refused `unavailable` / HTTP 503, retryable (history-fill.ts).
 *   The store's highest seq below the RoomLog position is such a hole too, not the end of history.
 * Pages are ascending; `more` is as for MessageStore.page.
 */
import type { HistoryPage, HistoryQuery } from '../engines/messagestore/messagestore.js';
import type { RoomLog } from '../engines/roomlog/roomlog.js';
import type { RoomMessage, RoomRef } from '../engines/types.js';
import { fillHoles, type HoleFilling } from './history-fill.js';

export async function readHistory(roomLog: RoomLog, f: HoleFilling, ref: RoomRef, q: HistoryQuery): Promise<HistoryPage> {
  const position = await roomLog.position(ref).catch(() => null);
  // A RoomLog that does not answer, or does not know the room: the store alone says where history ends.
  const top = position !== null && position.seq > 0 ? position.seq : undefined;
  return q.after !== undefined ? readAfter(roomLog, f, ref, q.after, q.limit, top) : readBefore(roomLog, f, ref, q.before, q.limit, top);
}

async function readBefore(
  roomLog: RoomLog,
  f: HoleFilling,
  ref: RoomRef,
  before: number | undefined,
  limit: number,
  top: number | undefined,
): Promise<HistoryPage> {
  if (top === undefined) {
    const page = await f.store.page(ref, before !== undefined ? { before, limit } : { limit });
    const last = page.messages[page.messages.length - 1];
    const hi = before !== undefined ? before - 1 : (last?.seq ?? 0);
    return complete(f, ref, bySeq(page.messages), page.more, hi, limit);
  }
  const hi = Math.min(before !== undefined ? before - 1 : top, top);
  if (hi < 1) return { messages: [], more: false };
  const lo = Math.max(1, hi - limit + 1);
  const tail = contiguousTo(await roomLog.range(ref, lo, hi).catch(() => []), hi);
  if (tail.length === hi - lo + 1) return { messages: tail, more: lo > 1 };
  const below = tail.length > 0 ? tail[0]!.seq : hi + 1;
  const page = await f.store.page(ref, { before: below, limit: below - lo });
  const have = bySeq(page.messages);
  for (const m of tail) have.set(m.seq, m);
  return complete(f, ref, have, page.more, hi, limit);
}

/** Seqs under a page checked before it says nothing is older (`more: false`). */
const BOTTOM_CHECK = 1_000;

/**
 * The newest `limit` seqs up to `hi`, once checked for holes. A page that would say nothing is older
 * also checks the BOTTOM_CHECK seqs under it: a hole there (e.g. a room's first messages in a killed
 * writer's batch) would otherwise end history early.
 */
async function complete(f: HoleFilling, ref: RoomRef, have: Map<number, RoomMessage>, storeMore: boolean, hi: number, limit: number): Promise<HistoryPage> {
  if (hi < 1) return { messages: [], more: false };
  const from = Math.max(1, hi - limit + 1);
  const older = (): boolean => [...have.keys()].some((seq) => seq < from);
  await fillHoles(f, ref, have, storeMore || older() ? from : Math.max(1, from - BOTTOM_CHECK), hi);
  const messages = [...have.values()].filter((m) => m.seq >= from && m.seq <= hi).sort((a, b) => a.seq - b.seq);
  return { messages, more: storeMore || older() };
}

async function readAfter(roomLog: RoomLog, f: HoleFilling, ref: RoomRef, after: number, limit: number, top: number | undefined): Promise<HistoryPage> {
  const page = await f.store.page(ref, { after, limit });
  const have = bySeq(page.messages);
  let hi: number;
  if (top !== undefined && top > after) {
    hi = Math.min(top, after + limit);
    for (const m of await roomLog.range(ref, after + 1, hi).catch(() => [])) have.set(m.seq, m);
  } else {
    // Nothing known beyond the store (or the RoomLog is behind it): check between the page's ends.
    hi = Math.min(after + limit, page.messages[page.messages.length - 1]?.seq ?? after);
  }
  await fillHoles(f, ref, have, after + 1, hi);
  const messages = [...have.values()].filter((m) => m.seq > after && m.seq <= hi).sort((a, b) => a.seq - b.seq);
  const beyond = page.messages.some((m) => m.seq > hi);
  return { messages, more: beyond || page.more || (top !== undefined && hi < top) };
}

function bySeq(messages: readonly RoomMessage[]): Map<number, RoomMessage> {
  return new Map(messages.map((m) => [m.seq, m]));
}

/** The run of `ms` (ascending) that ends at `hi` with no gap. */
function contiguousTo(ms: RoomMessage[], hi: number): RoomMessage[] {
  let i = ms.length - 1;
  if (i < 0 || ms[i]!.seq !== hi) return [];
  while (i > 0 && ms[i - 1]!.seq === ms[i]!.seq - 1) i--;
  return ms.slice(i);
}
