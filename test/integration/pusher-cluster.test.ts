/**
 * Pusher Channels protocol 7 across a 3-node cluster of real node processes over real nats-server (JetStream),
 * redis-server and PostgreSQL (throwaway, free ports), with nginx in front; driven by the real, unmodified
 * pusher-js 8 (Node build) and `pusher` 5 server SDK. A client is placed on a given node through that node's own
 * port. Covered: presence member lists agree on every node; a user with tabs on two nodes is one member_added
 * and one member_removed (when the last tab goes); the HTTP API's channel list, user list and counts agree on
 * every node; SDK triggers and protocol-v1 publishes reach subscribers of both protocols on every node in one
 * order and are in history; pusher-js and the HTTP API through nginx; a node killed with -9 removes its users
 * once each, within the presence TTL, and nobody else.
 */
import { mkdtempSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx } from '../../src/cli/nginx.js';
import { freePort } from '../helpers/free-port.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { connected, pusherJs, serverSdk, subscribed, type PresenceChannel, type PusherJS, type TestApp } from '../helpers/pusher-clients.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const APP: TestApp = { id: '3001', key: 'cluster-key', secret: 'cluster-secret-0123456', clientEvents: true };
const PRESENCE_TTL_MS = 3000;
/** How late after the TTL a crashed node's users may go: heartbeat and sweep intervals, a loaded machine. */
const TTL_SLACK_MS = 5000;

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: PusherJS[] = [];
const v1Clients: TestClient[] = [];
let nginx: ChildProcess | undefined;
let nginxPort: number;

interface Member {
  id: string;
  info: unknown;
}

function pusherOn(n: NodeProcess, user?: Member): PusherJS {
  const c = pusherJs(APP, n.port, user !== undefined ? { user: { id: user.id, info: user.info as Record<string, unknown> } } : {});
  clients.push(c);
  return c;
}

async function v1On(n: NodeProcess, sub: string): Promise<TestClient> {
  const c = await TestClient.connect(n.wsUrl, { token: await token(sub, { tenant: APP.id, rooms: { join: ['*'], publish: ['*'] } }) });
  v1Clients.push(c);
  return c;
}

/** A presence channel's members as pusher-js holds them, sorted by id. */
function membersOf(ch: PresenceChannel): Member[] {
  const out: Member[] = [];
  ch.members.each((m: Member) => out.push({ id: m.id, info: m.info }));
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** Records the member_added / member_removed ids a presence channel sees, and the `marker` events (barriers). */
function watch(ch: PresenceChannel): { added: string[]; removed: string[]; markers: string[] } {
  const seen = { added: [] as string[], removed: [] as string[], markers: [] as string[] };
  ch.bind('pusher:member_added', (m: Member) => seen.added.push(m.id));
  ch.bind('pusher:member_removed', (m: Member) => seen.removed.push(m.id));
  ch.bind('marker', (d: string) => seen.markers.push(d));
  return seen;
}

/**
 * A barrier: triggers `marker` on `channel` through node `n` until `markers` has it. Presence announcements
 * node `n` made before the trigger were published before it, so once the marker is seen they have had their
 * chance to arrive (a bounded wait for "nothing more comes", without a fixed sleep).
 */
async function barrier(n: NodeProcess, channel: string, markers: string[], tag: string): Promise<void> {
  const sdk = serverSdk(APP, n.port);
  const deadline = Date.now() + 15_000;
  while (!markers.includes(tag)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for marker ${tag} on ${channel}`);
    await sdk.trigger(channel, 'marker', tag);
    await waitFor(() => markers.includes(tag), 500, `marker ${tag}`).catch(() => undefined);
  }
}

interface ChannelViews {
  list: unknown;
  users: string[];
  info: unknown;
}

/** What the HTTP API of node `n` says about `channel` (through the `pusher` SDK, signed). */
async function httpViews(port: number, channel: string): Promise<ChannelViews> {
  const sdk = serverSdk(APP, port);
  const list = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
  const users = ((await (await sdk.get({ path: `/channels/${channel}/users` })).json()) as { users: { id: string }[] }).users.map((u) => u.id).sort();
  const info = await (await sdk.get({ path: `/channels/${channel}`, params: { info: 'subscription_count,user_count' } })).json();
  return { list, users, info };
}

/** `GET /channels/:channel?info=subscription_count` on node port `port`. */
async function channelInfo(port: number, channel: string): Promise<{ occupied: boolean; subscription_count?: number }> {
  return (await (await serverSdk(APP, port).get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } })).json()) as {
    occupied: boolean;
    subscription_count?: number;
  };
}

async function tcpOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = tcpConnect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

beforeAll(async () => {
  const nats = await startNatsServer({ jetstream: true });
  const redis = await startRedisServer();
  const pg = await startPostgres();
  servers.push(nats, redis, pg);
  const args = (i: number): string[] => [
    '--node-id',
    `node-${i}`,
    '--nats',
    nats.url,
    '--redis',
    redis.url,
    '--database',
    pg.url,
    '--presence-ttl-ms',
    String(PRESENCE_TTL_MS),
    '--presence-diff-ms',
    '50',
    '--jwt-secret',
    JWT_SECRET,
    '--api-key',
    API_KEY,
    '--pusher-apps',
    JSON.stringify([APP]),
  ];
  // One at a time: the first creates the PostgreSQL schema and the JetStream stream.
  for (let i = 1; i <= 3; i++) nodes.push(await startNodeProcess({ dev: false, args: args(i) }));
  nginxPort = await freePort();
  nginx = startNginx({
    listenPort: nginxPort,
    upstreams: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    dir: mkdtempSync(join(tmpdir(), 'sb-nginx-')),
  });
  await waitFor(() => tcpOpen(nginxPort), 10_000, 'nginx listening', 50);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const c of v1Clients) c.close();
  if (nginx !== undefined && nginx.exitCode === null && nginx.signalCode === null) {
    const exited = new Promise((resolve) => nginx!.once('exit', resolve));
    nginx.kill('SIGTERM');
    await exited;
  }
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('Pusher presence across 3 nodes', () => {
  it('members on three nodes see the same member list, with user_info', async () => {
    const people: Member[] = [
      { id: 'alice', info: { name: 'Alice' } },
      { id: 'bob', info: { name: 'Bob' } },
      { id: 'cat', info: { name: 'Cat' } },
    ];
    const channels: PresenceChannel[] = [];
    for (const [i, p] of people.entries()) channels.push(await subscribed<PresenceChannel>(pusherOn(nodes[i]!, p), 'presence-lobby'));
    for (const ch of channels) await waitFor(() => ch.members.count === 3, 10_000, 'three members on every node');
    for (const ch of channels) expect(membersOf(ch)).toEqual(people);
    // A late joiner on node 2 gets the whole list in its subscription_succeeded.
    const late = await subscribed<PresenceChannel>(pusherOn(nodes[1]!, { id: 'dan', info: { name: 'Dan' } }), 'presence-lobby');
    expect(membersOf(late)).toEqual([...people, { id: 'dan', info: { name: 'Dan' } }]);
    for (const ch of channels) await waitFor(() => ch.members.count === 4, 10_000, 'dan on every node');
    for (const ch of [...channels, late]) expect(membersOf(ch)).toEqual(membersOf(late));
  });

  it('a user with two tabs on two nodes: one member_added, and one member_removed only when both tabs close', async () => {
    const CH = 'presence-tabs';
    const observer = await subscribed<PresenceChannel>(pusherOn(nodes[2]!, { id: 'olga', info: {} }), CH);
    const seen = watch(observer);
    const tab1 = pusherOn(nodes[0]!, { id: 'dana', info: { tab: 1 } });
    const tab2 = pusherOn(nodes[1]!, { id: 'dana', info: { tab: 2 } });
    await subscribed(tab1, CH);
    const t2 = await subscribed<PresenceChannel>(tab2, CH);
    expect(t2.members.count).toBe(2); // olga and dana, not dana twice
    // Both tabs' announcements (if any) were published by nodes 1 and 2 before these markers.
    await barrier(nodes[0]!, CH, seen.markers, 'both-tabs-1');
    await barrier(nodes[1]!, CH, seen.markers, 'both-tabs-2');
    expect(seen.added).toEqual(['dana']);
    expect(observer.members.count).toBe(2);

    tab1.disconnect();
    // The HTTP API of node 1 shows the tab gone once its presence leave is done; the marker follows it.
    await waitFor(async () => ((await httpViews(nodes[0]!.port, CH)).info as { subscription_count: number }).subscription_count === 2, 10_000, 'tab 1 gone');
    await barrier(nodes[0]!, CH, seen.markers, 'tab1-closed');
    expect(seen.removed).toEqual([]);
    expect(observer.members.get('dana')).not.toBeNull();

    tab2.disconnect();
    await waitFor(() => seen.removed.length >= 1, 10_000, 'member_removed');
    await barrier(nodes[1]!, CH, seen.markers, 'tab2-closed');
    await barrier(nodes[0]!, CH, seen.markers, 'tab2-closed-n1');
    expect(seen.removed).toEqual(['dana']);
    expect(seen.added).toEqual(['dana']);
    expect(membersOf(observer).map((m) => m.id)).toEqual(['olga']);
  });

  it('GET /channels, /channels/:ch/users and /channels/:ch agree on every node', async () => {
    const CH = 'presence-agree';
    const layout: [number, string][] = [
      [0, 'uma'],
      [1, 'uma'],
      [1, 'vic'],
      [2, 'wes'],
      [2, 'wes'],
    ];
    for (const [i, id] of layout) await subscribed(pusherOn(nodes[i]!, { id, info: {} }), CH);
    const expected = { users: ['uma', 'vic', 'wes'], info: { occupied: true, subscription_count: 5, user_count: 3 } };
    let views: ChannelViews[] = [];
    await waitFor(
      async () => {
        views = await Promise.all(nodes.map((n) => httpViews(n.port, CH)));
        return views.every((v) => JSON.stringify(v) === JSON.stringify(views[0]) && JSON.stringify(v.users) === JSON.stringify(expected.users));
      },
      10_000,
      'the same views on every node',
      100,
    ).catch(() => undefined);
    for (const v of views) {
      expect(v.users).toEqual(expected.users);
      expect(v.info).toEqual(expected.info);
      expect((v.list as { channels: Record<string, unknown> }).channels[CH]).toEqual({ user_count: 3 });
      expect(v.list).toEqual(views[0]!.list);
    }
  });
});

describe('events across nodes and protocols', () => {
  it('SDK triggers on node 1 and v1 publishes on node 3 reach pusher-js on nodes 2 and 3 and v1 on nodes 1 and 2 in one order, as in history', async () => {
    const CH = 'orders.cluster';
    const v1s = [await v1On(nodes[0]!, 'vera'), await v1On(nodes[1]!, 'walt')];
    const publisher = await v1On(nodes[2]!, 'xena');
    for (const v of [...v1s, publisher]) expect(await v.request({ type: 'join', room: CH })).toMatchObject({ type: 'joined' });
    // The v1 joins' presence.diff frames are flushed on every node before a Pusher member is in the room.
    const joinedIn = (v: TestClient): Set<unknown> =>
      new Set(v.frames.filter((f) => f.type === 'presence.diff' && f.room === CH).flatMap((f) => (f.joined as { user: string }[]).map((j) => j.user)));
    for (const v of [...v1s, publisher]) await waitFor(() => joinedIn(v).has('xena'), 10_000, 'the last v1 join flushed on every node');
    const subs = [await subscribed(pusherOn(nodes[1]!), CH), await subscribed(pusherOn(nodes[2]!), CH)];
    const got: { event: string; data: unknown }[][] = subs.map(() => []);
    subs.forEach((ch, k) =>
      ch.bind_global((event: string, data: unknown) => {
        if (!event.startsWith('pusher')) got[k]!.push({ event, data });
      }),
    );
    const sdk = serverSdk(APP, nodes[0]!.port);
    // Every node's interest in the room is in place once a probe from node 1 reached every subscriber.
    await waitFor(
      async () => {
        if (got.every((g) => g.length > 0) && v1s.every((v) => v.messages(CH).length > 0)) return true;
        await sdk.trigger(CH, 'probe', JSON.stringify({ i: -1 }));
        return false;
      },
      15_000,
      'a probe everywhere',
      200,
    );
    const N = 30;
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      sends.push(
        i % 2 === 0 ? sdk.trigger(CH, 'order-placed', JSON.stringify({ i })) : publisher.request({ type: 'publish', room: CH, data: { i }, event: 'v1-note' }),
      );
    }
    await Promise.all(sends);
    const asI = (d: unknown): number => (typeof d === 'string' ? (JSON.parse(d) as { i: number }).i : (d as { i: number }).i);
    const real = <T>(xs: T[], data: (x: T) => unknown): T[] => xs.filter((x) => asI(data(x)) >= 0);
    await waitFor(
      () => got.every((g) => real(g, (x) => x.data).length === N) && v1s.every((v) => real(v.messages(CH), (f) => f.data).length === N),
      15_000,
      'every event on every subscriber',
    );
    const v1Order = real(v1s[0]!.messages(CH), (f) => f.data);
    const order = v1Order.map((f) => asI(f.data));
    expect(new Set(order).size).toBe(N);
    expect(real(v1s[1]!.messages(CH), (f) => f.data).map((f) => asI(f.data))).toEqual(order);
    for (const g of got) {
      const mine = real(g, (x) => x.data);
      expect(mine.map((x) => asI(x.data))).toEqual(order);
      for (const x of mine) expect(x.event).toBe(asI(x.data) % 2 === 0 ? 'order-placed' : 'v1-note');
    }
    // One gap-free sequence, probes included, on both v1 members.
    for (const v of v1s) {
      const seqs = v.messages(CH).map((f) => f.seq as number);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => (seqs[0] ?? 1) + k));
    }
    // History from any node: the same messages in the same order, with their events.
    for (const n of nodes) {
      const res = await fetch(`${n.url}/api/rooms/${CH}/history?tenant=${APP.id}&limit=200`, { headers: { authorization: `Bearer ${API_KEY}` } });
      expect(res.status).toBe(200);
      const history = ((await res.json()) as { messages: (Frame & { seq: number; event?: string; data: unknown })[] }).messages;
      const h = real(history, (m) => m.data);
      expect(h.map((m) => asI(m.data))).toEqual(order);
      expect(h.map((m) => m.seq)).toEqual(v1Order.map((f) => f.seq));
      for (const m of h) expect(m.event).toBe(asI(m.data) % 2 === 0 ? 'order-placed' : 'v1-note');
    }
    // Pusher members out first: the v1 leaves' presence.diff must not reach them (the defect below).
    for (const ch of subs) ch.pusher.disconnect();
    await waitFor(async () => (await channelInfo(nodes[0]!.port, CH)).subscription_count === 3, 10_000, 'the pusher-js subscribers gone', 100);
    for (const v of [...v1s, publisher]) v.close();
  });

  // Was a defect (src/rooms/room.ts flushPresence): v1's batched `presence.diff` (no `event`) went to every
  // member, Pusher connections included, and pusher-js threw in its message handler. Only members whose codec
  // batches presence get it now.
  it('a v1 member joining a channel sends no presence.diff (a frame without an event) to its Pusher subscribers', async () => {
    const CH = 'mixed-presence';
    const raw = await TestClient.open(`ws://127.0.0.1:${nodes[0]!.port}/app/${APP.key}?protocol=7&client=js&version=8.6.0`);
    v1Clients.push(raw);
    await raw.waitFor((f) => f.event === 'pusher:connection_established');
    raw.send({ event: 'pusher:subscribe', data: { channel: CH } });
    await raw.waitFor((f) => f.event === 'pusher_internal:subscription_succeeded');
    const v1 = await v1On(nodes[0]!, 'yuri');
    expect(await v1.request({ type: 'join', room: CH })).toMatchObject({ type: 'joined' });
    // The diff is flushed to every member of the node's room at once: the v1 member's copy says it has been.
    await v1.waitFor((f) => f.type === 'presence.diff' && f.room === CH);
    await serverSdk(APP, nodes[0]!.port).trigger(CH, 'marker', 'm');
    await raw.waitFor((f) => f.event === 'marker');
    expect(raw.frames.filter((f) => typeof f.event !== 'string')).toEqual([]);
    v1.close();
  });

  it('through nginx: pusher-js connects on /app/:key, the signed HTTP API works on /apps/:id, presence spans the nodes behind it', async () => {
    const CH = 'presence-via-nginx';
    const people = ['nia', 'nils', 'nora'];
    const chans: PresenceChannel[] = [];
    for (const id of people) {
      const c = pusherJs(APP, nginxPort, { user: { id, info: {} } });
      clients.push(c);
      await connected(c);
      chans.push(await subscribed<PresenceChannel>(c, CH));
    }
    for (const ch of chans) await waitFor(() => ch.members.count === people.length, 10_000, 'every member through nginx');
    const views = await httpViews(nginxPort, CH);
    expect(views.users).toEqual(people);
    expect(views.info).toEqual({ occupied: true, subscription_count: 3, user_count: 3 });
    const got: string[][] = chans.map(() => []);
    chans.forEach((ch, k) => ch.bind('hello', (d: string) => got[k]!.push(d)));
    const sdk = serverSdk(APP, nginxPort);
    const res = await sdk.trigger(CH, 'hello', 'through nginx', { info: 'subscription_count,user_count' });
    expect(await res.json()).toEqual({ channels: { [CH]: { subscription_count: 3, user_count: 3 } } });
    await waitFor(() => got.every((g) => g.length === 1), 10_000, 'the event through nginx');
    for (const g of got) expect(g).toEqual(['through nginx']);
    // The direct views of every node agree with nginx's.
    for (const n of nodes) expect(await httpViews(n.port, CH)).toEqual(views);
  });
});

describe('a node killed with -9', () => {
  const CH = 'presence-crash';
  /** What the observer on node 1 saw, and when node 3 was killed: the second case reads them. */
  let crash: { observer: PresenceChannel; seen: ReturnType<typeof watch>; killedAt: number } | undefined;

  it('its users leave the HTTP API’s member lists within the presence TTL; the other members stay', async () => {
    const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    const observer = await subscribed<PresenceChannel>(pusherOn(n1, { id: 'obs', info: {} }), CH);
    const seen = watch(observer);
    await subscribed(pusherOn(n2, { id: 'gina', info: {} }), CH);
    // erin has a tab on node 3 only; finn on node 3 and node 2 (he stays); hal two tabs on node 3.
    const doomed = [
      pusherOn(n3, { id: 'erin', info: {} }),
      pusherOn(n3, { id: 'finn', info: {} }),
      pusherOn(n3, { id: 'hal', info: {} }),
      pusherOn(n3, { id: 'hal', info: {} }),
    ];
    for (const c of doomed) await subscribed(c, CH);
    await subscribed(pusherOn(n2, { id: 'finn', info: {} }), CH);
    await waitFor(() => observer.members.count === 5, 10_000, 'five members at the observer');
    await barrier(n3, CH, seen.markers, 'before-kill');
    expect([...seen.added].sort()).toEqual(['erin', 'finn', 'gina', 'hal']);

    await n3.kill();
    const killedAt = Date.now();
    crash = { observer, seen, killedAt };
    for (const c of doomed) c.disconnect(); // nothing to send: the socket is dead; stops pusher-js reconnecting
    const survivors = '["finn","gina","obs"]';
    await waitFor(
      async () => (await Promise.all([n1, n2].map((n) => httpViews(n.port, CH)))).every((v) => JSON.stringify(v.users) === survivors),
      PRESENCE_TTL_MS + TTL_SLACK_MS + 5000,
      'the HTTP API without the dead node’s users',
      100,
    );
    expect(Date.now() - killedAt).toBeLessThan(PRESENCE_TTL_MS + TTL_SLACK_MS);
    const views = await Promise.all([n1, n2].map((n) => httpViews(n.port, CH)));
    for (const v of views) {
      expect(v.info).toEqual({ occupied: true, subscription_count: 3, user_count: 3 });
      expect((v.list as { channels: Record<string, unknown> }).channels[CH]).toEqual({ user_count: 3 });
      expect(v).toEqual(views[0]);
    }
    // Nobody who is still there was removed.
    await barrier(n1, CH, seen.markers, 'after-kill-1');
    await barrier(n2, CH, seen.markers, 'after-kill-2');
    for (const id of ['finn', 'gina', 'obs']) expect(seen.removed).not.toContain(id);
    for (const id of ['finn', 'gina', 'obs']) expect(observer.members.get(id)).not.toBeNull();
  });

  // Was a defect: a crashed node's users expired in the presence store without anyone announcing it. Each
  // node now compares its presence channels' member lists with the store's (LocalRoom.reconcilePresence).
  it('its users are removed once each at the pusher-js members of the other nodes (member_removed), within the presence TTL', async () => {
    const [n1, n2] = nodes as [NodeProcess, NodeProcess];
    expect(crash).toBeDefined();
    const { observer, seen, killedAt } = crash!;
    await waitFor(
      () => seen.removed.includes('erin') && seen.removed.includes('hal'),
      Math.max(0, killedAt + PRESENCE_TTL_MS + TTL_SLACK_MS - Date.now()),
      'erin and hal removed',
      20,
    );
    // Later (duplicate) announcements would have come through nodes 1 and 2 before these markers.
    await barrier(n1, CH, seen.markers, 'removed-1');
    await barrier(n2, CH, seen.markers, 'removed-2');
    expect([...seen.removed].sort()).toEqual(['erin', 'hal']);
    expect(membersOf(observer).map((m) => m.id)).toEqual(['finn', 'gina', 'obs']);
  });
});
