/**
 * The two-region harness (test/helpers/regions.ts) does what the region tests rely on: two nats-servers with
 * JetStream, clusters `east` and `west`, joined by gateways through TCP proxies in this process.
 * - a subscriber in west receives what is published in east, across the gateway;
 * - with the link cut it does not (and a request to a responder across the cut fails at once with no
 *   responders, which is what a forwarded publish will be answered `unavailable` on), while each region
 *   still serves itself; after the restore it does again;
 * - with the link held (no resets) bytes wait in the link and arrive, in order, once it is restored;
 * - a delay on the link shows in a round trip across it.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNats } from '../../src/connections/nats.js';
import { startTwoRegions, type TwoRegions } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

let topo: TwoRegions;
const conns: NatsConnection[] = [];
let east: NatsConnection;
let west: NatsConnection;

/** Publishes `text` on `subject` every 100 ms until `got` has it (gateway interest reaches the other side a moment after a subscribe). */
async function publishUntilSeen(nc: NatsConnection, subject: string, text: string, got: string[], timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      if (got.includes(text)) return true;
      nc.publish(subject, enc.encode(text));
      await nc.flush();
      return false;
    },
    timeoutMs,
    `"${text}" on ${subject}`,
    100,
  );
}

beforeAll(async () => {
  topo = await startTwoRegions({ postgres: 'none' });
  const [e, w] = topo.regions;
  east = await openNats({ url: e.nats.url, name: 'east client' });
  west = await openNats({ url: w.nats.url, name: 'west client' });
  conns.push(east, west);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(conns.map((c) => c.close()));
  await topo?.dispose();
});

describe('two regions joined by a NATS gateway through a proxy', () => {
  it('carries a message across the gateway, not while cut, and again after the restore', async () => {
    const got: string[] = [];
    west.subscribe('room.x', { callback: (_err, m) => void got.push(dec.decode(m.data)) });
    await west.flush();
    await publishUntilSeen(east, 'room.x', 'before', got);
    expect(topo.link.bytes()).toBeGreaterThan(0);

    // A responder in west, reached from east across the gateway.
    west.subscribe('svc.west', { queue: 'west', callback: (_err, m) => void m.respond(enc.encode(`west got ${dec.decode(m.data)}`)) });
    await west.flush();
    await waitFor(
      async () => {
        try {
          return dec.decode((await east.request('svc.west', enc.encode('ping'), { timeout: 1_000 })).data) === 'west got ping';
        } catch {
          return false;
        }
      },
      20_000,
      'a request from east answered in west',
      100,
    );

    topo.link.cut();
    await topo.link.waitDown();
    expect(topo.link.state).toBe('cut');
    east.publish('room.x', enc.encode('during-cut'));
    await east.flush();
    // East has no gateway to west: a request to west's responder fails at once (no responders), not by timeout.
    const started = Date.now();
    await expect(east.request('svc.west', enc.encode('ping'), { timeout: 5_000 })).rejects.toThrow(/no responders|503/i);
    expect(Date.now() - started).toBeLessThan(2_500);
    // Each region keeps serving itself.
    const local: string[] = [];
    east.subscribe('room.local', { callback: (_err, m) => void local.push(dec.decode(m.data)) });
    await east.flush();
    east.publish('room.local', enc.encode('east-only'));
    await waitFor(() => local.includes('east-only'), 5_000, 'east serving itself during the cut');
    const westLocal = dec.decode((await west.request('svc.west', enc.encode('local'), { timeout: 2_000 })).data);
    expect(westLocal).toBe('west got local');

    topo.link.restore();
    await topo.link.waitUp();
    await publishUntilSeen(east, 'room.x', 'after', got);
    // Published before `after` on the same connection: had it crossed, it would have arrived first.
    expect(got).not.toContain('during-cut');
    expect(got[0]).toBe('before');
    expect(got[got.length - 1]).toBe('after');
  }, 120_000);

  it('holds bytes in the link while held and delivers them in order on restore', async () => {
    const got: string[] = [];
    west.subscribe('room.held', { callback: (_err, m) => void got.push(dec.decode(m.data)) });
    await west.flush();
    await publishUntilSeen(east, 'room.held', 'ready', got);
    topo.link.hold();
    const pendingBefore = topo.link.pendingBytes();
    for (let i = 0; i < 5; i++) east.publish('room.held', enc.encode(`held-${i}`));
    await east.flush();
    // East's server wrote them to its gateway connection: they sit in the link, so west cannot have them yet.
    await waitFor(() => topo.link.pendingBytes() > pendingBefore, 5_000, 'the held messages to reach the link');
    expect(got.filter((g) => g.startsWith('held-'))).toEqual([]);
    topo.link.restore();
    await waitFor(() => got.filter((g) => g.startsWith('held-')).length === 5, 10_000, 'the held messages after the restore');
    expect(got.filter((g) => g.startsWith('held-'))).toEqual(['held-0', 'held-1', 'held-2', 'held-3', 'held-4']);
  }, 60_000);

  it('delays every crossing by the link delay', async () => {
    const rtt = async (): Promise<number> => {
      const t = performance.now();
      await east.request('svc.west', enc.encode('rtt'), { timeout: 5_000 });
      return performance.now() - t;
    };
    await rtt();
    const fast = await rtt();
    topo.link.delayMs = 150;
    try {
      // Request and reply each cross the link once.
      const slow = await rtt();
      expect(slow).toBeGreaterThanOrEqual(2 * 150);
      expect(slow).toBeGreaterThan(fast);
    } finally {
      topo.link.delayMs = 0;
    }
  }, 60_000);
});
