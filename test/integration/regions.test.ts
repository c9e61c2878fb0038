/**
 * Regions on real nodes (issue 17, first slice): two regions from test/helpers/regions.ts (each a nats-server
 * with JetStream, Redis and PostgreSQL), joined by a gateway through a proxy in this process, one node
 * process per region started with --region. Rooms `e-*` are homed in east, `w-*` in west.
 * - A publish to an east room made in west is forwarded to east, sequenced there (east's Redis has the room,
 *   west's has nothing of it), stored in east's stream (SWITCHBOARD_east, placed in cluster east), acked with
 *   east's seq, and reaches a member in east.
 * - With the link cut: west's publish to the east room is answered `unavailable` (HTTP 503) at once, never
 *   acked; each region keeps serving the rooms homed in it. After the restore the retry with the same idem is
 *   acked once, and the member got every acked message once, in order.
 * Not yet here (docs/scaling.md "Regions", not built): members in the non-home region, presence across regions.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNats } from '../../src/connections/nats.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startTwoRegions, type TestRegion, type TwoRegions } from '../helpers/regions.js';
import { TestClient } from '../helpers/ws-client.js';

const HOMES = JSON.stringify([
  { rooms: ['e-*'], region: 'east' },
  { rooms: ['w-*'], region: 'west' },
]);

let topo: TwoRegions;
let east: NodeProcess;
let west: NodeProcess;
const clients: TestClient[] = [];
const redis: Redis[] = [];
const conns: NatsConnection[] = [];

async function regionNode(r: TestRegion): Promise<NodeProcess> {
  return startNodeProcess({
    args: [
      '--node-id',
      `${r.name}-1`,
      '--region',
      r.name,
      '--regions',
      'east,west',
      '--region-homes',
      HOMES,
      '--nats',
      r.nats.url,
      '--redis',
      r.redis.url,
      '--database',
      r.pg!.url,
      '--publish-timeout-ms',
      '3000',
    ],
  });
}

async function publish(n: NodeProcess, body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${n.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The room keys a region's Redis holds for `room` (its sequence, window, idempotency records). */
async function roomKeys(r: Redis, room: string): Promise<string[]> {
  return r.keys(`*${room}*`);
}

beforeAll(async () => {
  topo = await startTwoRegions();
  [east, west] = await Promise.all([regionNode(topo.regions[0]), regionNode(topo.regions[1])]);
  for (const r of topo.regions) redis.push(new Redis(r.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 }));
}, 180_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.allSettled([east?.stop(), west?.stop()]);
  for (const r of redis) r.disconnect();
  await Promise.allSettled(conns.map((c) => c.close()));
  await topo?.dispose();
});

describe('a publish to a room homed in another region', () => {
  it('is sequenced and stored in the home region and acked from there; across a cut it is unavailable and its retry lands once', async () => {
    const member = await TestClient.connect(east.wsUrl, { user: 'erin' });
    clients.push(member);
    await member.request({ type: 'join', room: 'e-lobby' });

    const first = await publish(west, { room: 'e-lobby', from: 'wes', data: 'from west', idem: 'w-1' });
    expect(first).toMatchObject({ status: 200, json: { room: 'e-lobby', seq: 1, duplicate: false } });
    const second = await publish(east, { room: 'e-lobby', from: 'ed', data: 'from east', idem: 'e-1' });
    expect(second).toMatchObject({ status: 200, json: { seq: 2 } });
    expect((await member.waitForMessages('e-lobby', 2)).map((f) => [f.seq, f.data])).toEqual([
      [1, 'from west'],
      [2, 'from east'],
    ]);
    // Sequenced in east's Redis only; stored in east's stream, placed in east's NATS cluster.
    expect((await roomKeys(redis[0]!, 'e-lobby')).length).toBeGreaterThan(0);
    expect(await roomKeys(redis[1]!, 'e-lobby')).toEqual([]);
    const nc = await openNats({ url: topo.regions[0].nats.url });
    conns.push(nc);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('SWITCHBOARD_east');
    expect(info.cluster?.name).toBe('east');
    expect(info.config.subjects).toEqual(['sb.rd.east.>']);
    expect(info.state.messages).toBe(2);
    expect((await jsm.streams.info('SWITCHBOARD_west')).cluster?.name).toBe('west');

    topo.link.cut();
    await topo.link.waitDown();
    const t0 = Date.now();
    const refused = await publish(west, { room: 'e-lobby', from: 'wes', data: 'during the cut', idem: 'w-2' });
    expect(refused).toMatchObject({ status: 503, json: { error: { code: 'unavailable' } } });
    expect(Date.now() - t0).toBeLessThan(2_000); // no responders: answered at once, not after the timeout
    // Each region keeps serving its own rooms.
    expect(await publish(east, { room: 'e-lobby', from: 'ed', data: 'east during the cut', idem: 'e-2' })).toMatchObject({ status: 200, json: { seq: 3 } });
    expect(await publish(west, { room: 'w-room', from: 'wes', data: 'west during the cut' })).toMatchObject({ status: 200, json: { seq: 1 } });

    topo.link.restore();
    await topo.link.waitUp();
    // The forwarding subscription's interest reaches west a moment after the link: retry (same idem) until acked.
    let retry = await publish(west, { room: 'e-lobby', from: 'wes', data: 'during the cut', idem: 'w-2' });
    const deadline = Date.now() + 20_000;
    while (retry.status === 503 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      retry = await publish(west, { room: 'e-lobby', from: 'wes', data: 'during the cut', idem: 'w-2' });
    }
    expect(retry).toMatchObject({ status: 200, json: { seq: 4 } });
    expect(await publish(west, { room: 'e-lobby', from: 'wes', data: 'during the cut', idem: 'w-2' })).toMatchObject({
      status: 200,
      json: { seq: 4, duplicate: true },
    });
    const got = await member.waitForMessages('e-lobby', 4);
    expect(got.map((f) => f.seq)).toEqual([1, 2, 3, 4]);
    expect(got[3]!.data).toBe('during the cut');
    expect((await jsm.streams.info('SWITCHBOARD_east')).state.messages).toBe(4);
  }, 180_000);
});
