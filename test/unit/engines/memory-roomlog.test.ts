/** Behaviour of the in-process RoomLog beyond the shared contract, on a controlled clock. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRoomLog } from '../../../src/engines/roomlog/memory.js';
import type { RoomPosition, RoomRef } from '../../../src/engines/types.js';

const room: RoomRef = { tenant: 'acme', room: 'lobby' };

describe('MemoryRoomLog', () => {
  let clock = 5_000_000;
  const now = (): number => clock;
  const logs: MemoryRoomLog[] = [];
  const open = (options: ConstructorParameters<typeof MemoryRoomLog>[0] = {}): MemoryRoomLog => {
    const log = new MemoryRoomLog({ sweepMs: 60_000, ...options }, now);
    logs.push(log);
    return log;
  };
  afterEach(async () => {
    await Promise.all(logs.splice(0).map((l) => l.close()));
  });

  it('awaits seed once per room under concurrent first use', async () => {
    let calls = 0;
    const log = open({
      seed: async () => {
        calls += 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
        return { seq: 10, epoch: 'S' };
      },
    });
    const [a, b, p] = await Promise.all([log.append(room, { from: 'u', data: 1 }), log.append(room, { from: 'u', data: 2 }), log.position(room)]);
    expect(calls).toBe(1);
    expect([a.message.seq, b.message.seq]).toEqual([11, 12]);
    expect(p).toEqual({ seq: 12, epoch: 'S' });
  });

  it('retries a failed seed on the next call', async () => {
    let fail = true;
    const log = open({
      seed: async () => {
        if (fail) throw new Error('store down');
        return { seq: 3, epoch: 'S' };
      },
    });
    await expect(log.append(room, { from: 'u', data: 1 })).rejects.toThrow('store down');
    fail = false;
    expect((await log.append(room, { from: 'u', data: 1 })).message).toMatchObject({ seq: 4, epoch: 'S' });
  });

  it('trims the window by age on the injected clock', async () => {
    const log = open({ windowMs: 1000 });
    await log.append(room, { from: 'u', data: 1 });
    clock += 600;
    await log.append(room, { from: 'u', data: 2 });
    clock += 401;
    const { epoch } = await log.position(room);
    expect((await log.since(room, 0, epoch)).messages.map((m) => m.seq)).toEqual([2]);
    expect((await log.since(room, 1, epoch)).complete).toBe(true);
  });

  it('bounds idempotency ids by idemMax, forgetting the oldest first', async () => {
    const log = open({ idemMax: 3 });
    for (const idem of ['a', 'b', 'c', 'd']) await log.append(room, { from: 'u', data: idem, idem });
    expect((await log.append(room, { from: 'u', data: 'd2', idem: 'd' })).duplicate).toBe(true);
    expect((await log.append(room, { from: 'u', data: 'b2', idem: 'b' })).duplicate).toBe(true);
    const again = await log.append(room, { from: 'u', data: 'a2', idem: 'a' });
    expect(again).toMatchObject({ duplicate: false, message: { seq: 5 } });
  });

  it('evicts idle empty rooms only when a seed can restore them', async () => {
    const stored = new Map<string, RoomPosition>();
    const seeded = open({ windowMs: 1000, idemMs: 2000, seed: async (ref) => stored.get(ref.room) ?? null });
    const plain = open({ windowMs: 1000, idemMs: 2000 });
    for (const log of [seeded, plain]) {
      const r = await log.append(room, { from: 'u', data: 1, idem: 'x' });
      stored.set(room.room, { seq: r.message.seq, epoch: r.message.epoch });
    }
    clock += 1500;
    seeded.sweep();
    plain.sweep();
    expect([seeded.size(), plain.size()]).toEqual([1, 1]); // idem id still remembered
    clock += 1000;
    seeded.sweep();
    plain.sweep();
    expect([seeded.size(), plain.size()]).toEqual([0, 1]);
    const before = stored.get(room.room)!;
    expect(await seeded.position(room)).toEqual(before);
    expect((await seeded.append(room, { from: 'u', data: 2 })).message).toMatchObject({ seq: 2, epoch: before.epoch });
  });

  it('rejects calls after close', async () => {
    const log = open();
    await log.close();
    await expect(log.append(room, { from: 'u', data: 1 })).rejects.toThrow(/closed/);
    await expect(log.position(room)).rejects.toThrow(/closed/);
  });
});
