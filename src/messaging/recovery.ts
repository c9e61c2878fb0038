/**
 * Recovery of what a client missed: from the RoomLog's recent window when it still holds everything after
 * the client's seq, else from the MessageStore when the gap is within `maxGap`, else a reset (the client
 * reloads from history). Never returns a partial run: the messages are exactly seq+1..end, in order.
 * Seqs the store lacks are filled from the durable log (history-fill.ts); a failure there is thrown
 * (the join answers `unavailable`), and seqs that were never acked make it a reset (`gap`).
 */
import type { RoomLog } from '../engines/roomlog/roomlog.js';
import type { RoomMessage, RoomPosition, RoomRef } from '../engines/types.js';
import { fillHoles, type HoleFilling } from './history-fill.js';

export type RecoveryOutcome =
  | { kind: 'recovered'; messages: RoomMessage[]; position: RoomPosition; source: 'window' | 'store' }
  | { kind: 'reset'; position: RoomPosition; reason: 'epoch' | 'gap' | 'ahead' | 'size' | 'overflow' };

const PAGE = 1000;

export async function recover(roomLog: RoomLog, f: HoleFilling, ref: RoomRef, since: RoomPosition, maxGap: number): Promise<RecoveryOutcome> {
  const fromWindow = await roomLog.since(ref, since.seq, since.epoch);
  const position = fromWindow.position;
  if (position.epoch !== since.epoch) return { kind: 'reset', position, reason: 'epoch' };
  if (since.seq > position.seq) return { kind: 'reset', position, reason: 'ahead' };
  if (position.seq - since.seq > maxGap) return { kind: 'reset', position, reason: 'gap' };
  if (fromWindow.complete) return { kind: 'recovered', messages: fromWindow.messages, position, source: 'window' };

  // The window starts after since+1: read the older part from the store, the rest from the window.
  const windowStart = fromWindow.messages.length > 0 ? fromWindow.messages[0]!.seq : position.seq + 1;
  const older = new Map<number, RoomMessage>(); // and then the window's part
  let after = since.seq;
  while (after < windowStart - 1) {
    const page = await f.store.page(ref, { after, limit: PAGE });
    for (const m of page.messages) {
      if (m.seq >= windowStart) break;
      older.set(m.seq, m);
    }
    if (page.messages.length === 0) break;
    after = page.messages[page.messages.length - 1]!.seq;
    if (!page.more) break;
  }
  for (const m of fromWindow.messages) older.set(m.seq, m);
  await fillHoles(f, ref, older, since.seq + 1, windowStart - 1);
  const messages = [...older.values()].sort((a, b) => a.seq - b.seq);
  const contiguous = messages.every((m, i) => m.seq === since.seq + 1 + i && m.epoch === since.epoch);
  const last = messages.length > 0 ? messages[messages.length - 1]!.seq : since.seq;
  if (!contiguous || last !== position.seq) return { kind: 'reset', position, reason: 'gap' };
  return { kind: 'recovered', messages, position, source: 'store' };
}
