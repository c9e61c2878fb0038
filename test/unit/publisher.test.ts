/** Publisher: the publish path's failure handling with the real in-process engines. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackplane, MemoryBus } from '../../src/engines/backplane/memory.js';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import type { RoomMessage } from '../../src/engines/types.js';
import { Publisher } from '../../src/messaging/publisher.js';
import { roomSubject } from '../../src/messaging/subjects.js';
import { SwitchboardError } from '../../src/protocol/errors.js';
import { waitFor } from '../helpers/wait.js';

const ref = { tenant: 't', room: 'r' };
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

function setup(timeoutMs: number) {
  const roomLog = new MemoryRoomLog();
  const durable = new MemoryDurableLog();
  const backplane = new MemoryBackplane(new MemoryBus());
  closers.push(
    () => roomLog.close(),
    () => durable.close(),
    () => backplane.close(),
  );
  const errors: unknown[] = [];
  const publisher = new Publisher(roomLog, durable, backplane, (e) => errors.push(e), timeoutMs);
  return { roomLog, durable, backplane, publisher, errors };
}

describe('Publisher', () => {
  it('answers unavailable when the durable log does not confirm in time; a retry with the same idem stores it once', async () => {
    const { durable, backplane, publisher } = setup(50);
    const delivered: number[] = [];
    await backplane.subscribe(roomSubject(ref), (p) => delivered.push((JSON.parse(Buffer.from(p).toString()) as { m: RoomMessage }).m.seq));
    // No consumer yet: in-process appends resolve only once committed, so this one times out.
    const first = publisher.toRoom(ref, { from: 'u', data: 'hello', idem: 'k1' });
    await expect(first).rejects.toBeInstanceOf(SwitchboardError);
    await expect(first).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    expect(delivered).toEqual([]); // never acked, never delivered
    const stored: RoomMessage[] = [];
    const consumer = durable.consume(async (batch) => {
      stored.push(...batch);
    });
    closers.unshift(() => consumer.stop());
    const retry = await publisher.toRoom(ref, { from: 'u', data: 'hello', idem: 'k1' });
    expect(retry).toMatchObject({ duplicate: true, message: { seq: 1 } });
    await waitFor(() => stored.length >= 1, 2000, 'stored');
    expect(stored.map((m) => m.seq)).toEqual([1]);
    // the retry's ack means members get it now, not only when a later message triggers gap repair
    await waitFor(() => delivered.includes(1), 2000, 'delivery of seq 1 after the retry');
    const next = await publisher.toRoom(ref, { from: 'u', data: 'again', idem: 'k2' });
    expect(next).toMatchObject({ duplicate: false, message: { seq: 2 } });
    await waitFor(() => delivered.includes(2), 2000, 'delivery of seq 2');
    expect(stored.map((m) => m.seq)).toEqual([1, 2]);
  });

  it('publishes on the backplane and acks only after the durable log confirmed', async () => {
    const { durable, backplane, publisher } = setup(5000);
    const order: string[] = [];
    await backplane.subscribe(roomSubject(ref), () => order.push('backplane'));
    const consumer = durable.consume(async () => {
      order.push('committed');
    });
    closers.unshift(() => consumer.stop());
    await publisher.toRoom(ref, { from: 'u', data: 1 });
    order.push('acked');
    await waitFor(() => order.includes('backplane'), 2000, 'backplane');
    expect(order[0]).toBe('committed');
    expect(order.slice(1).sort()).toEqual(['acked', 'backplane']);
  });
});
