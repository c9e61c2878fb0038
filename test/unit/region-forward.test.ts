/**
 * Publishes forwarded to a room's home region (messaging/region-forward.ts), two "regions" in one process:
 * each its own in-process engines and Publisher, joined by an in-memory RegionTransport that can be cut.
 * The real NATS path is test/integration/regions.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackplane, MemoryBus } from '../../src/engines/backplane/memory.js';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import type { RoomMessage } from '../../src/engines/types.js';
import { Publisher } from '../../src/messaging/publisher.js';
import { RegionForwarder, RegionTransportError, serveRegionPublishes, type RegionTransport } from '../../src/messaging/region-forward.js';
import { RegionHomes } from '../../src/messaging/region-homes.js';
import { SwitchboardError } from '../../src/protocol/errors.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** Subjects served in this process; `cut` makes every request fail as NATS does across a cut gateway. */
class MemoryTransport implements RegionTransport {
  cut = false;
  /** When set, the home runs the request but its reply is lost (the link fails mid-request). */
  loseReplies = false;
  private readonly served = new Map<string, (body: Uint8Array) => Promise<Uint8Array>>();
  async request(subject: string, body: Uint8Array): Promise<Uint8Array> {
    const handler = this.served.get(subject);
    if (this.cut || handler === undefined) throw new RegionTransportError('no_responders', `${subject}: no responders`);
    const reply = await handler(body);
    if (this.loseReplies) throw new RegionTransportError('timeout', `${subject}: timeout`);
    return reply;
  }
  async serve(subject: string, _queue: string, handler: (body: Uint8Array) => Promise<Uint8Array>): Promise<{ close(): Promise<void> }> {
    this.served.set(subject, handler);
    return { close: async () => void this.served.delete(subject) };
  }
}

async function region(name: string, transport: MemoryTransport, bus: MemoryBus) {
  const roomLog = new MemoryRoomLog();
  const durable = new MemoryDurableLog();
  const stored: RoomMessage[] = [];
  const consumer = durable.consume(async (batch) => void stored.push(...batch));
  const backplane = new MemoryBackplane(bus);
  const homes = new RegionHomes(
    name,
    ['east', 'west'],
    [
      { tenant: '*', rooms: ['e-*'], region: 'east' },
      { tenant: '*', rooms: ['w-*'], region: 'west' },
    ],
  );
  const forwarder = new RegionForwarder(homes, transport, 1_000);
  const publisher = new Publisher(roomLog, durable, backplane, () => undefined, 1_000, forwarder);
  const served = await serveRegionPublishes(
    homes,
    transport,
    (ref, input, except) => publisher.toRoom(ref, input, except),
    () => undefined,
  );
  closers.push(
    () => served.close(),
    () => consumer.stop(),
    () => durable.close(),
    () => roomLog.close(),
    () => backplane.close(),
  );
  return { roomLog, stored, publisher };
}

describe('forwarding a publish to the home region', () => {
  it('sequences and stores the message in the home region only, and answers with its ack', async () => {
    const transport = new MemoryTransport();
    const bus = new MemoryBus();
    const east = await region('east', transport, bus);
    const west = await region('west', transport, bus);
    const ref = { tenant: 't', room: 'e-lobby' };
    const a = await west.publisher.toRoom(ref, { from: 'wendy', data: 'from west', idem: 'w1' });
    const b = await east.publisher.toRoom(ref, { from: 'ed', data: 'from east', idem: 'e1' });
    expect([a.message.seq, b.message.seq]).toEqual([1, 2]);
    expect(a.duplicate).toBe(false);
    expect((await east.roomLog.position(ref)).seq).toBe(2);
    expect((await west.roomLog.position(ref)).seq).toBe(0);
    expect(east.stored.map((m) => m.data)).toEqual(['from west', 'from east']);
    expect(west.stored).toEqual([]);
    // A room homed in west, published in east: sequenced in west.
    await east.publisher.toRoom({ tenant: 't', room: 'w-room' }, { from: 'ed', data: 1 });
    expect((await west.roomLog.position({ tenant: 't', room: 'w-room' })).seq).toBe(1);
  });

  it('answers unavailable (retryable) across a cut, keeps each region serving its own rooms, and lands a retry once', async () => {
    const transport = new MemoryTransport();
    const bus = new MemoryBus();
    const east = await region('east', transport, bus);
    const west = await region('west', transport, bus);
    const ref = { tenant: 't', room: 'e-lobby' };
    transport.cut = true;
    const refused = west.publisher.toRoom(ref, { from: 'wendy', data: 'x', idem: 'w1' });
    await expect(refused).rejects.toBeInstanceOf(SwitchboardError);
    await expect(refused).rejects.toMatchObject({ code: 'unavailable', retryable: true });
    // Each region serves the rooms homed in it.
    expect((await east.publisher.toRoom(ref, { from: 'ed', data: 'e' })).message.seq).toBe(1);
    expect((await west.publisher.toRoom({ tenant: 't', room: 'w-room' }, { from: 'wendy', data: 'w' })).message.seq).toBe(1);
    // The link fails after the home stored it: the forwarder is answered unavailable, the retry gets the first ack.
    transport.cut = false;
    transport.loseReplies = true;
    await expect(west.publisher.toRoom(ref, { from: 'wendy', data: 'x', idem: 'w1' })).rejects.toMatchObject({ code: 'unavailable' });
    transport.loseReplies = false;
    const retry = await west.publisher.toRoom(ref, { from: 'wendy', data: 'x', idem: 'w1' });
    expect(retry).toMatchObject({ duplicate: true, message: { seq: 2, data: 'x' } });
    expect(east.stored.map((m) => m.seq)).toEqual([1, 2]);
  });

  it("passes the home's refusals through with their code", async () => {
    const transport = new MemoryTransport();
    const bus = new MemoryBus();
    await region('east', transport, bus);
    const west = await region('west', transport, bus);
    const ref = { tenant: 't', room: 'e-capped' };
    await west.publisher.toRoom(ref, { from: 'wendy', data: 1, maxPerSecond: 1 });
    await expect(west.publisher.toRoom(ref, { from: 'wendy', data: 2, maxPerSecond: 1 })).rejects.toMatchObject({ code: 'rate_limited' });
  });

  it('refuses a room the home does not consider its own (the regions disagree on the homes)', async () => {
    const transport = new MemoryTransport();
    const homes = new RegionHomes('east', ['east', 'west']);
    const room = Array.from({ length: 100 }, (_, i) => `r${i}`).find((r) => homes.homeOf('t', r) === 'west')!;
    const served = await serveRegionPublishes(
      homes,
      transport,
      async () => {
        throw new Error('must not publish');
      },
      () => undefined,
    );
    closers.push(() => served.close());
    const wrong = new RegionForwarder(new RegionHomes('west', ['east', 'west'], [{ tenant: '*', rooms: [room], region: 'east' }]), transport, 1_000);
    await expect(wrong.publish('east', { tenant: 't', room }, { from: 'u', data: 1 })).rejects.toMatchObject({
      code: 'unavailable',
      message: expect.stringMatching(/regions disagree/),
    });
  });
});
