/**
 * Three gateway node processes over real NATS, Redis and PostgreSQL (throwaway servers on free ports):
 * messages and presence across nodes, one order under concurrent publishers, a node crash, a NATS server
 * restart in a 3-server NATS cluster, a Redis restart, and nginx in front.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx } from '../../src/cli/nginx.js';
import { freePort } from '../helpers/free-port.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];
let nats: TestServer[];
let redis: TestServer;
let pg: TestServer;

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const seqs = (fs: Frame[]): number[] => fs.map((f) => f.seq as number);

async function startClusterNode(i: number, extra: string[] = []): Promise<NodeProcess> {
  const n = await startNodeProcess({
    args: [
      '--node-id',
      `node-${i}`,
      '--nats',
      nats.map((s) => s.url).join(','),
      '--redis',
      redis.url,
      '--database',
      pg.url,
      '--presence-ttl-ms',
      '3000',
      '--presence-diff-ms',
      '50',
      // These tests are about the backplane (core NATS cluster restarts); JetStream: durable-history.test.ts.
      '--durable-log',
      'memory',
      ...extra,
    ],
  });
  nodes.push(n);
  return n;
}

async function client(n: NodeProcess, user: string): Promise<TestClient> {
  const c = await TestClient.connect(n.wsUrl, { user });
  clients.push(c);
  return c;
}

/**
 * A node's subscription is confirmed by its own NATS server; the interest reaches the other servers of the
 * cluster over the routes a moment later, so a single message published right after a join (or connect)
 * on another node may not cross (test/integration/backplane-faults.test.ts does the same on raw
 * backplanes). Sends probes with distinct data (`send(k)`) until `seen()`, giving each 200 ms; resolves
 * with the number of probes sent.
 */
async function sendUntilSeen(send: (k: number) => Promise<unknown>, seen: () => boolean, what: string, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let k = 0;
  while (!seen()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await send(k++);
    await waitFor(seen, 200, what).catch(() => undefined);
  }
  return k;
}

const PROBE = 'probe:';
const isProbe = (f: Frame): boolean => typeof f.data === 'string' && f.data.startsWith(PROBE);
/** The messages of `room` other than probes. */
const real = (c: TestClient, room: string): Frame[] => c.messages(room).filter((f) => !isProbe(f));

/** Publishes probes from every publisher until every member saw one from each; resolves with how many were published. */
async function probeRoom(room: string, publishers: TestClient[], members: TestClient[]): Promise<number> {
  let sent = 0;
  for (const [p, pub] of publishers.entries()) {
    const tag = `${PROBE}${p}:`;
    sent += await sendUntilSeen(
      (k) => pub.request({ type: 'publish', room, data: `${tag}${k}` }),
      () => members.every((m) => m.messages(room).some((f) => isProbe(f) && (f.data as string).startsWith(tag))),
      `a probe from publisher ${p} on every member of ${room}`,
    );
  }
  return sent;
}

async function httpPublish(n: NodeProcess, body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${n.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  // A 3-server NATS cluster: every node gets all three URLs.
  const clusterPorts = [await freePort(), await freePort(), await freePort()];
  nats = await Promise.all(
    clusterPorts.map((port, i) => startNatsServer({ serverName: `nats-${i}`, cluster: { name: 'sb', port, routes: clusterPorts.filter((p) => p !== port) } })),
  );
  redis = await startRedisServer();
  pg = await startPostgres();
  servers.push(...nats, redis, pg);
  for (let i = 1; i <= 3; i++) await startClusterNode(i);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('a 3-node cluster', () => {
  it('room messages and direct messages cross nodes; presence agrees on every node', async () => {
    const [a, b, c] = [await client(nodes[0]!, 'ann'), await client(nodes[1]!, 'ben'), await client(nodes[2]!, 'cat')];
    for (const x of [a, b, c]) await x.request({ type: 'join', room: 'across' });
    const probes = await probeRoom('across', [a], [a, b, c]);
    const ack = await a.request({ type: 'publish', room: 'across', data: 'hello from node-1' });
    expect(ack).toMatchObject({ type: 'ack', seq: probes + 1 });
    for (const x of [a, b, c]) {
      const got = await x.waitFor((f) => f.type === 'message' && f.room === 'across' && f.data === 'hello from node-1');
      expect(got).toMatchObject({ seq: probes + 1, from: 'ann', data: 'hello from node-1' });
    }
    const ann2 = await client(nodes[2]!, 'ann');
    const isDirect =
      (data: string) =>
      (f: Frame): boolean =>
        f.type === 'direct' && f.data === data;
    await sendUntilSeen(
      async (k) => expect((await httpPublish(nodes[1]!, { user: 'ann', data: `${PROBE}${k}` })).status).toBe(202),
      () => [a, ann2].every((x) => x.frames.some((f) => f.type === 'direct' && isProbe(f))),
      "a direct probe on both of ann's connections",
    );
    const d = await httpPublish(nodes[1]!, { user: 'ann', data: 'dm' });
    expect(d.status).toBe(202);
    for (const x of [a, ann2]) expect(await x.waitFor(isDirect('dm'))).toMatchObject({ data: 'dm' });
    await waitFor(
      async () => {
        const lists = await Promise.all(
          nodes
            .slice(0, 3)
            .map(async (n) => ((await (await fetch(`${n.url}/api/rooms/across/presence`)).json()) as { members: { user: string; online: boolean }[] }).members),
        );
        return lists.every(
          (l) =>
            JSON.stringify(
              l
                .filter((m) => m.online)
                .map((m) => m.user)
                .sort(),
            ) === '["ann","ben","cat"]',
        );
      },
      5000,
      'presence agrees on all nodes',
    );
  });

  it('concurrent publishers on 3 nodes: every member on every node sees one identical gap-free order', async () => {
    const members = [];
    for (const [i, n] of nodes.entries()) for (let k = 0; k < 2; k++) members.push(await client(n, `m${i}-${k}`));
    for (const m of members) await m.request({ type: 'join', room: 'race' });
    const N = 100;
    await Promise.all(
      members
        .filter((_, i) => i % 2 === 0)
        .map((p, pi) => Promise.all(range(1, N).map((i) => p.request({ type: 'publish', room: 'race', data: `${pi}:${i}` })))),
    );
    const orders = await Promise.all(members.map((m) => m.waitForMessages('race', 3 * N, 20_000)));
    const reference = orders[0]!.map((f) => f.data);
    for (const o of orders) {
      expect(seqs(o)).toEqual(range(1, 3 * N));
      expect(o.map((f) => f.data)).toEqual(reference);
    }
    const hist = (await (await fetch(`${nodes[1]!.url}/api/rooms/race/history?limit=1000`)).json()) as { messages: Frame[] };
    expect(hist.messages.map((m) => m.data)).toEqual(reference);
  });

  it('kill -9 one node: its users go offline within the presence TTL, the others are untouched', async () => {
    const victim = await startClusterNode(4);
    const doomed = await client(victim, 'doomed');
    const alive = await client(nodes[0]!, 'alive');
    const watcher = await client(nodes[1]!, 'watcher');
    for (const x of [doomed, alive, watcher]) await x.request({ type: 'join', room: 'crash' });
    await victim.kill();
    const t0 = Date.now();
    await waitFor(
      async () => {
        const list = await watcher.request({ type: 'presence', room: 'crash' });
        const m = (list.members as { user: string; online: boolean }[]).find((x) => x.user === 'doomed');
        return m !== undefined && !m.online;
      },
      15_000,
      'doomed goes offline',
    );
    expect(Date.now() - t0).toBeLessThan(3000 + 5000);
    const list = await watcher.request({ type: 'presence', room: 'crash' });
    expect(
      (list.members as { user: string; online: boolean }[])
        .filter((m) => m.online)
        .map((m) => m.user)
        .sort(),
    ).toEqual(['alive', 'watcher']);
    await alive.request({ type: 'publish', room: 'crash', data: 'still here' });
    expect((await watcher.waitForMessages('crash', 1))[0]).toMatchObject({ data: 'still here' });
  });

  it('restarting one NATS server mid-stream loses no acked message', async () => {
    const subs = await Promise.all(nodes.slice(0, 3).map((n, i) => client(n, `nsub-${i}`)));
    for (const s of subs) await s.request({ type: 'join', room: 'natsfail' });
    const pub = await client(nodes[0]!, 'npub');
    await pub.request({ type: 'join', room: 'natsfail' });
    const acked: number[] = [];
    let stop = false;
    const loop = (async () => {
      let i = 0;
      while (!stop) {
        const r = await pub.request({ type: 'publish', room: 'natsfail', data: ++i, idem: `n-${i}` }).catch(() => null);
        if (r?.type === 'ack') acked.push(r.seq as number);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    await nats[0]!.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await nats[0]!.restart();
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await loop;
    expect(acked.length).toBeGreaterThan(20);
    const last = Math.max(...acked);
    for (const s of subs) {
      const got = await s.waitForMessages('natsfail', last, 15_000);
      // every acked message reached every member once, in order (gaps repaired from the RoomLog)
      expect(seqs(got).filter((q) => q <= last)).toEqual(range(1, last));
    }
  });

  it('stopping Redis: publishes fail with a typed error; after it returns the nodes recover by themselves', async () => {
    const a = await client(nodes[0]!, 'ra');
    const b = await client(nodes[1]!, 'rb');
    for (const x of [a, b]) await x.request({ type: 'join', room: 'redisfail' });
    await a.request({ type: 'publish', room: 'redisfail', data: 'before' });
    await redis.stop();
    const during = await a.request({ type: 'publish', room: 'redisfail', data: 'during' }, 20_000);
    expect(during).toMatchObject({ type: 'error', code: 'unavailable', retryable: true });
    // Every publish needs the RoomLog and every connect presence: the node is not ready without Redis, and says which.
    await waitFor(async () => (await fetch(`${nodes[0]!.url}/readyz`)).status === 503, 20_000, '/readyz 503 while Redis is down');
    const checks = ((await (await fetch(`${nodes[0]!.url}/readyz`)).json()) as { checks: Record<string, { ok: boolean }> }).checks;
    expect(checks.roomLog?.ok).toBe(false);
    await redis.restart();
    await waitFor(async () => (await fetch(`${nodes[0]!.url}/readyz`)).status === 200, 30_000, '/readyz 200 after Redis returns');
    await waitFor(
      async () => (await a.request({ type: 'publish', room: 'redisfail', data: 'after' }, 20_000)).type === 'ack',
      20_000,
      'publish after redis returns',
    );
    const msgs = await b.waitForMessages('redisfail', 2, 10_000);
    expect(msgs.map((m) => m.data)).toEqual(['before', 'after']);
  });

  it('nginx in front of 3 nodes: two clients on different nodes chat through it', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
    const nginx = startNginx({ listenPort: port, upstreams: nodes.slice(0, 3).map((n) => ({ host: '127.0.0.1', port: n.port })), dir });
    try {
      await waitFor(
        () =>
          new Promise<boolean>((resolve) => {
            const s = connect(port, '127.0.0.1', () => {
              s.destroy();
              resolve(true);
            });
            s.on('error', () => resolve(false));
          }),
        10_000,
        'nginx listening',
      );
      const url = `ws://127.0.0.1:${port}/ws`;
      const first = await TestClient.connect(url, { user: 'lb-1' });
      clients.push(first);
      let second = await TestClient.connect(url, { user: 'lb-2' });
      const nodeOf = (c: TestClient): unknown => c.frames.find((f) => f.type === 'connected')!.node;
      for (let i = 0; i < 5 && nodeOf(second) === nodeOf(first); i++) {
        second.close();
        second = await TestClient.connect(url, { user: 'lb-2' });
      }
      clients.push(second);
      expect(nodeOf(second)).not.toBe(nodeOf(first));
      for (const c of [first, second]) await c.request({ type: 'join', room: 'via-nginx' });
      await probeRoom('via-nginx', [first, second], [first, second]);
      await first.request({ type: 'publish', room: 'via-nginx', data: 'hi through nginx' });
      await second.request({ type: 'publish', room: 'via-nginx', data: 'hi back' });
      for (const c of [first, second]) {
        await waitFor(() => real(c, 'via-nginx').length >= 2, 10_000, 'both messages');
        expect(real(c, 'via-nginx').map((m) => m.data)).toEqual(['hi through nginx', 'hi back']);
      }
    } finally {
      nginx.kill('SIGTERM');
    }
  });

  it('--workers 2: two gateway processes on one port, each its own node, chatting through the backplane', async () => {
    const port = await freePort();
    const w = await startNodeProcess({
      port,
      args: [
        '--workers',
        '2',
        '--node-id',
        'multi',
        '--nats',
        nats.map((x) => x.url).join(','),
        '--redis',
        redis.url,
        '--database',
        pg.url,
        '--durable-log',
        'memory',
      ],
    });
    nodes.push(w);
    // the helper returns at the first worker's "listening"; wait for both
    await waitFor(() => new Set(w.logs.filter((l) => l.msg === 'listening').map((l) => l.node)).size === 2, 30_000, 'both workers listening');
    const seen = new Map<string, TestClient>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const c = await TestClient.connect(`ws://127.0.0.1:${port}/ws`, { user: `w${i}` });
      clients.push(c);
      const node = c.frames.find((f) => f.type === 'connected')!.node as string;
      if (!seen.has(node)) seen.set(node, c);
    }
    expect([...seen.keys()].sort()).toEqual(['multi-w0', 'multi-w1']);
    const [x, y] = [...seen.values()];
    for (const c of [x!, y!]) await c.request({ type: 'join', room: 'workers' });
    await probeRoom('workers', [x!], [y!]);
    await x!.request({ type: 'publish', room: 'workers', data: 'across workers' });
    await waitFor(() => real(y!, 'workers').length >= 1, 10_000, 'the message across workers');
    expect(real(y!, 'workers')[0]).toMatchObject({ data: 'across workers' });
    expect(await w.stop()).toBe(0);
  });

  it('a node whose NATS is unreachable at start exits non-zero naming NATS and where', async () => {
    const dead = await freePort();
    const r = spawnSync(
      process.execPath,
      [CLI, 'start', '--dev', '--port', '0', '--nats', `nats://127.0.0.1:${dead}`, '--redis', redis.url, '--database', pg.url],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.status).toBe(3);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`NATS unreachable at nats://127.0.0.1:${dead}`));
  });

  it('switchboard cluster --nodes 2 runs two nodes behind nginx and drains on SIGTERM', async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        CLI,
        'cluster',
        '--nodes',
        '2',
        '--port',
        String(port),
        '--nats',
        nats[1]!.url,
        '--redis',
        redis.url,
        '--database',
        pg.url,
        '--',
        '--dev',
        '--durable-log',
        'memory',
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200, 30_000, 'cluster behind nginx');
      const a = await TestClient.connect(`ws://127.0.0.1:${port}/ws`, { user: 'ca' });
      const b = await TestClient.connect(`ws://127.0.0.1:${port}/ws`, { user: 'cb' });
      clients.push(a, b);
      for (const c of [a, b]) await c.request({ type: 'join', room: 'local-cluster' });
      await a.request({ type: 'publish', room: 'local-cluster', data: 'hello' });
      expect((await b.waitForMessages('local-cluster', 1))[0]).toMatchObject({ data: 'hello' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
