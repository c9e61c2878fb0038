/**
 * History reads for the HTTP API and the protocol's `history` request: permanent history in the
 * MessageStore, with the RoomLog's recent window for the newest messages. With JetStream in front of the
 * store, the newest acked messages may not be in PostgreSQL yet (writer lag, or the database down); the
 * window has them, so a page is never missing the newest messages the room already delivered.
 *
 * - Newest page / `before`: the wanted seqs are [hi-limit+1, hi] with hi = min(before-1, room position).
 *   The window's contiguous run ending at hi is used as is; the rest (older) comes from the store. A page
 *   the window covers whole is served even while the store is down; a page whose older part the store
 *   does not have yet (writer lag beyond the window) is refused `unavailable`, never served with a hole.
 * - `after`: the store's page merged with the window's messages in the same range, cut at the first seq
 *   neither has: the store may have holes for a while (history writers commit batches in parallel, and a
 *   killed writer's batch is redelivered only after the JetStream ack wait) that the window still covers.
 * Pages are ascending and contiguous where both sources agree; `more` is as for MessageStore.page.
 */
import type { HistoryPage, HistoryQuery, MessageStore } from '../engines/messagestore/messagestore.js';
import type { RoomLog } from '../engines/roomlog/roomlog.js';
import type { RoomMessage, RoomRef } from '../engines/types.js';
import { SwitchboardError } from '../protocol/errors.js';

export async function readHistory(roomLog: RoomLog, store: MessageStore, ref: RoomRef, q: HistoryQuery): Promise<HistoryPage> {
  const position = await roomLog.position(ref).catch(() => null);
  if (position === null || position.seq === 0) return store.page(ref, q);
  if (q.after !== undefined) {
    // Writers commit batches in parallel (and a killed writer's batch comes back only after the ack
    // wait), so the store may have holes the window still covers: merge both, keep the run from after+1.
    const page = await store.page(ref, q);
    const top = Math.min(position.seq, q.after + q.limit);
    if (top <= q.after) return page;
    const bySeq = new Map<number, RoomMessage>();
    for (const m of await roomLog.range(ref, q.after + 1, top).catch(() => [])) bySeq.set(m.seq, m);
    for (const m of page.messages) bySeq.set(m.seq, m);
    const messages: RoomMessage[] = [];
    for (let seq = q.after + 1; seq <= top && bySeq.has(seq); seq++) messages.push(bySeq.get(seq)!);
    if (messages.length < page.messages.length) return page; // the window is of another epoch: trust the store
    const end = messages.length > 0 ? messages[messages.length - 1]!.seq : q.after;
    return { messages, more: end < position.seq || page.more };
  }
  const hi = Math.min(q.before !== undefined ? q.before - 1 : position.seq, position.seq);
  if (hi < 1) return store.page(ref, q);
  const lo = Math.max(1, hi - q.limit + 1);
  const tail = contiguousTo(await roomLog.range(ref, lo, hi).catch(() => []), hi);
  if (tail.length === hi - lo + 1) return { messages: tail, more: lo > 1 };
  const below = tail.length > 0 ? tail[0]!.seq : hi + 1;
  const page = await store.page(ref, { before: below, limit: q.limit - tail.length });
  // The store must reach up to the window's run: when the writer lags by more than the window holds
  // (e.g. after a database outage), seqs in between are in neither yet, and a page that jumped over
  // them would make the client page on past messages it never sees. Better a retryable error.
  const newest = page.messages.length > 0 ? page.messages[page.messages.length - 1]!.seq : 0;
  if (below > 1 && tail.length > 0 && newest !== below - 1) {
    throw new SwitchboardError('unavailable', `history of ${ref.room} is catching up (seqs ${newest + 1}–${below - 1} are not stored yet); retry shortly`);
  }
  return { messages: [...page.messages, ...tail], more: page.more };
}

/** The run of `ms` (ascending) that ends at `hi` with no gap. */
function contiguousTo(ms: RoomMessage[], hi: number): RoomMessage[] {
  let i = ms.length - 1;
  if (i < 0 || ms[i]!.seq !== hi) return [];
  while (i > 0 && ms[i - 1]!.seq === ms[i]!.seq - 1) i--;
  return ms.slice(i);
}
