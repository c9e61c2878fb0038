/**
 * Cluster backplanes under faults, against real throwaway servers on free ports:
 * - NATS: a 3-server cluster where nodes on different servers exchange messages; one server killed while
 *   a publisher publishes continuously, and a node that knows all three URLs reconnects to another and
 *   receives again; a single server restarted, and every subscription comes back.
 * - Redis: redis-server restarted, and subscriptions resume with exactly the interest the node had.
 * - Either broker unreachable at start: a clear error naming it and where.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backplane } from '../../src/engines/backplane/backplane.js';
import { openNatsBackplane, type BackplaneStatusEvent, type NatsBackplane } from '../../src/engines/backplane/nats.js';
import { openRedisBackplane, type RedisBackplane } from '../../src/engines/backplane/redis.js';
import { freePort } from '../helpers/free-port.js';
import { startNatsServer, startRedisServer, type TestServer } from '../helpers/servers.js';
import { sleep, waitFor } from '../helpers/wait.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Subscribes and collects the payloads as text. */
async function collect(node: Backplane, subject: string): Promise<string[]> {
  const got: string[] = [];
  await node.subscribe(subject, (p) => got.push(dec.decode(p)));
  return got;
}

/** Publishes `text` every `intervalMs` until `got` contains it (a route or resubscription may lag). */
async function publishUntilSeen(node: Backplane, subject: string, text: string, got: string[], timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      if (got.includes(text)) return true;
      await node.publish(subject, enc.encode(text)).catch(() => undefined);
      return false;
    },
    timeoutMs,
    `"${text}" on ${subject}`,
    100,
  );
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

describe('NATS backplane on a 3-server cluster', () => {
  let servers: TestServer[] = [];
  const nodes: NatsBackplane[] = [];
  const open = async (urls: string[], name: string): Promise<NatsBackplane> => {
    const node = await openNatsBackplane({ url: urls.join(','), name });
    nodes.push(node);
    return node;
  };

  beforeAll(async () => {
    const routePorts = await distinctFreePorts(3);
    servers = await Promise.all(
      routePorts.map((port, i) => startNatsServer({ serverName: `sb-c${i}`, cluster: { name: 'sbtest', port, routes: routePorts.filter((p) => p !== port) } })),
    );
  });

  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.close()));
    await Promise.allSettled(servers.map((s) => s.dispose()));
  });

  it('delivers messages between nodes connected to different servers, in order per publisher', async () => {
    const [a, b, c] = await Promise.all(servers.map((s, i) => open([s.url], `cluster node ${i}`)));
    const subject = 'sb.r.t1.cross';
    const boxes = await Promise.all([a!, b!, c!].map((n) => collect(n, subject)));
    // subscribe() is confirmed by the node's own server; the interest reaches the other servers over
    // the routes a moment later, so wait until a probe from each server reaches every node.
    for (const [i, node] of [a!, b!, c!].entries()) {
      for (const box of boxes) await publishUntilSeen(node, subject, `probe${i}`, box);
    }
    for (const box of boxes) box.length = 0;
    for (let i = 0; i < 100; i++) {
      await a!.publish(subject, enc.encode(`a${i}`));
      await b!.publish(subject, enc.encode(`b${i}`));
      await c!.publish(subject, enc.encode(`c${i}`));
    }
    await waitFor(() => boxes.every((box) => box.filter((t) => !t.startsWith('probe')).length === 300), 15_000, '300 messages per node');
    for (const box of boxes) {
      for (const p of ['a', 'b', 'c']) {
        expect(box.filter((t) => t.startsWith(p))).toEqual(Array.from({ length: 100 }, (_, i) => `${p}${i}`));
      }
    }
  });

  it('a node that knows all three servers moves to another when its server is killed, and receives again', async () => {
    const urls = servers.map((s) => s.url);
    const events: BackplaneStatusEvent[] = [];
    const subscriber = await open(urls, 'cluster subscriber');
    subscriber.onStatus = (e) => events.push(e);
    const victim = servers.find((s) => subscriber.server.endsWith(`:${s.port}`));
    expect(victim).toBeDefined();
    const other = servers.find((s) => s !== victim)!;
    const publisher = await open([other.url], 'cluster publisher');
    const subject = 'sb.r.t1.failover';
    const received: number[] = [];
    await subscriber.subscribe(subject, (p) => received.push(Number(dec.decode(p))));

    // Publish continuously (errors counted, not thrown) until told to stop.
    let sent = 0;
    let failed = 0;
    let running = true;
    const pump = (async () => {
      while (running) {
        await publisher.publish(subject, enc.encode(String(sent))).then(
          () => sent++,
          () => failed++,
        );
        await sleep(2);
      }
    })();
    try {
      await waitFor(() => received.length >= 20, 15_000, 'messages before the kill');
      await victim!.kill();
      const sentAtKill = sent;
      // Core NATS is at-most-once: what was in flight to the killed server, and what was published
      // while the subscriber reconnected, is lost. So assert resumption, not zero loss: messages
      // published after the kill arrive, through another server.
      await waitFor(() => received.some((n) => n > sentAtKill), 20_000, 'messages published after the kill');
      expect(subscriber.health().ok).toBe(true);
      expect(subscriber.server.endsWith(`:${victim!.port}`)).toBe(false);
      expect(events.some((e) => e.type === 'disconnected')).toBe(true);
      expect(events.some((e) => e.type === 'reconnected')).toBe(true);
    } finally {
      running = false;
      await pump;
    }
    // At most once and in order: never a duplicate, never out of order, across the failover.
    for (let i = 1; i < received.length; i++) expect(received[i]!).toBeGreaterThan(received[i - 1]!);
    expect(failed).toBe(0); // the publisher's own server stayed up the whole time
  });
});

describe('NATS backplane across a server restart', () => {
  let server: TestServer;
  const nodes: NatsBackplane[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.close()));
    await server.dispose();
  });

  it('the client resubscribes every subscription after nats-server restarts', async () => {
    const [a, b] = await Promise.all([0, 1].map((i) => openNatsBackplane({ url: server.url, name: `restart node ${i}` })));
    nodes.push(a!, b!);
    const subjects = ['sb.r.t1.x', 'sb.r.t1.y', 'sb.u.t1.dXNlcg'];
    const boxes = await Promise.all(subjects.map((s) => collect(b!, s)));
    await server.stop();
    await waitFor(() => !b!.health().ok, 10_000, 'unhealthy while the server is down');
    expect(b!.health().detail).toMatch(/nats/);
    await expect(b!.subscribe('sb.r.t1.z', () => undefined)).rejects.toThrow(/not connected/);
    await server.restart();
    await waitFor(() => a!.health().ok && b!.health().ok, 20_000, 'healthy after restart');
    for (const [i, s] of subjects.entries()) await publishUntilSeen(a!, s, 'back', boxes[i]!);
    expect(boxes.map((box) => box.filter((t) => t === 'back').length >= 1)).toEqual([true, true, true]);
  });
});

describe('Redis backplane across a redis-server restart', () => {
  let server: TestServer;
  let admin: Redis;
  const nodes: RedisBackplane[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    admin.on('error', () => undefined);
  });
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.close()));
    admin.disconnect();
    await server.dispose();
  });

  /** How many subscriber connections Redis has on each channel. */
  const numsub = async (...channels: string[]): Promise<number[]> => {
    const reply = (await admin.call('PUBSUB', 'NUMSUB', ...channels)) as (string | number)[];
    return channels.map((_, i) => Number(reply[i * 2 + 1]));
  };

  it('subscriptions resume with the same interest: shared subjects once, unsubscribed ones not at all', async () => {
    const [a, b] = await Promise.all([0, 1].map(() => openRedisBackplane({ url: server.url })));
    nodes.push(a!, b!);
    const events: BackplaneStatusEvent[] = [];
    b!.onStatus = (e) => events.push(e);
    const first = await collect(b!, 'sb.r.t1.x');
    const second = await collect(b!, 'sb.r.t1.x');
    const direct = await collect(b!, 'sb.u.t1.dXNlcg');
    const gone = await b!.subscribe('sb.r.t1.gone', () => undefined);
    await gone.unsubscribe();
    await waitFor(async () => (await numsub('sb:sb.r.t1.gone'))[0] === 0, 5_000, 'UNSUBSCRIBE of the last local subscription');
    expect(await numsub('sb:sb.r.t1.x', 'sb:sb.u.t1.dXNlcg')).toEqual([1, 1]);

    await server.stop();
    // Both connections of both nodes must have noticed: health turns false as soon as either one has, and a
    // publisher that has not noticed yet still sends (and then fails on retries, not at once).
    const bothDown = (n: Backplane): boolean => /publisher (?!ready)\w+, subscriber (?!ready)\w+/.test(n.health().detail ?? '');
    await waitFor(() => bothDown(a!) && bothDown(b!), 10_000, 'both connections of both nodes down while Redis is down');
    expect(b!.health().detail).toMatch(/redis/);
    await expect(a!.publish('sb.r.t1.x', enc.encode('lost'))).rejects.toThrow(/not connected/);
    await expect(b!.subscribe('sb.r.t1.z', () => undefined)).rejects.toThrow(/not connected/);
    await server.restart();
    await waitFor(() => a!.health().ok && b!.health().ok, 20_000, 'healthy after restart');

    // health ok on the subscriber means Redis confirmed the resubscription, so no retry is needed.
    await a!.publish('sb.r.t1.x', enc.encode('back'));
    await a!.publish('sb.u.t1.dXNlcg', enc.encode('back'));
    await waitFor(() => first.includes('back') && second.includes('back') && direct.includes('back'), 10_000, 'delivery after restart');
    await sleep(50);
    expect([first, second, direct].map((box) => box.filter((t) => t === 'back').length)).toEqual([1, 1, 1]);
    expect(first).not.toContain('lost');
    await admin.connect().catch(() => undefined);
    expect(await numsub('sb:sb.r.t1.x', 'sb:sb.u.t1.dXNlcg', 'sb:sb.r.t1.gone')).toEqual([1, 1, 0]);
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['disconnected', 'reconnecting', 'reconnected']));
  });
});

describe('a throwing handler', () => {
  const brokers: { name: string; start: () => Promise<TestServer>; open: (url: string, onErr: (e: unknown, s: string) => void) => Promise<Backplane> }[] = [
    { name: 'nats', start: () => startNatsServer(), open: (url, onHandlerError) => openNatsBackplane({ url, onHandlerError }) },
    { name: 'redis', start: () => startRedisServer(), open: (url, onHandlerError) => openRedisBackplane({ url, onHandlerError }) },
  ];
  for (const broker of brokers) {
    it(`${broker.name}: is reported, and delivery to it and to the others goes on`, async () => {
      const server = await broker.start();
      const errors: string[] = [];
      const node = await broker.open(server.url, (e, s) => errors.push(`${s}: ${(e as Error).message}`));
      try {
        const subject = 'sb.r.t1.throws';
        const seen: string[] = [];
        await node.subscribe(subject, (p) => {
          seen.push(dec.decode(p));
          throw new Error('boom');
        });
        const other = await collect(node, subject);
        for (let i = 0; i < 3; i++) await node.publish(subject, enc.encode(`m${i}`));
        await waitFor(() => seen.length === 3 && other.length === 3, 5_000, 'three messages to both handlers');
        expect(errors).toEqual([`${subject}: boom`, `${subject}: boom`, `${subject}: boom`]);
        expect(node.health().ok).toBe(true);
      } finally {
        await node.close();
        await server.dispose();
      }
    });
  }
});

describe('cluster backplanes unreachable at start', () => {
  it('NATS: the error names NATS and the servers, without credentials', async () => {
    const port = await freePort();
    await expect(openNatsBackplane({ url: `nats://u:secret@127.0.0.1:${port}`, connectTimeoutMs: 2_000 })).rejects.toThrow(
      new RegExp(`^NATS unreachable at nats://127\\.0\\.0\\.1:${port}: `),
    );
    await expect(openNatsBackplane({ url: `nats://u:secret@127.0.0.1:${port}` })).rejects.not.toThrow(/secret/);
  });

  it('Redis: the error names Redis and where', async () => {
    const port = await freePort();
    await expect(openRedisBackplane({ url: `redis://:secret@127.0.0.1:${port}`, connectTimeoutMs: 2_000 })).rejects.toThrow(
      new RegExp(`redis \\(backplane publisher\\) unreachable at redis://127\\.0\\.0\\.1:${port}`),
    );
  });
});
