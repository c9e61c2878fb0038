/**
 * Pusher Channels protocol 7 on a real node process, driven by the real, unmodified packages: pusher-js 8
 * (Node build) and the `pusher` 5 server SDK (triggers, channel authorization, the HTTP API). Protocol-v1
 * clients of the same tenant share the rooms: one order, one history. Every bad input is refused the way
 * Pusher refuses it, is counted, and fails alone.
 */
import { createHash, createHmac } from 'node:crypto';
import type { PresenceChannel } from 'pusher-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { parsePrometheusText } from '../helpers/prom-text.js';
import { connected, pusherJs, serverSdk, subscribed, type PusherJS, type TestApp } from '../helpers/pusher-clients.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const APP: TestApp = { id: '1001', key: 'key-a', secret: 'secret-a-0123456', clientEvents: true, maxPresenceMembers: 3, maxEventBytes: 2000 };
const QUIET: TestApp = { id: '1002', key: 'key-b', secret: 'secret-b-0123456', clientEvents: false };

let node: NodeProcess;
/** Nodes a test starts for itself (killed after the suite if the test did not stop them). */
const ownNodes: NodeProcess[] = [];
const clients: PusherJS[] = [];
const raws: TestClient[] = [];

function client(app: TestApp, options: Parameters<typeof pusherJs>[2] = {}): PusherJS {
  const c = pusherJs(app, node.port, options);
  clients.push(c);
  return c;
}

/** A raw WebSocket on a Pusher path, for what pusher-js would not send. */
async function raw(path: string): Promise<TestClient> {
  const c = await TestClient.open(`ws://127.0.0.1:${node.port}${path}`);
  raws.push(c);
  return c;
}

const ev = (name: string) => (f: Frame) => (f as Record<string, unknown>).event === name;

async function errorsTotal(): Promise<Map<string, number>> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const s of parsePrometheusText(text).get('switchboard_errors_total')?.samples ?? []) out.set(s.labels.code ?? '', s.value);
  return out;
}

beforeAll(async () => {
  const apps = [APP, QUIET].map((a) => ({ ...a }));
  node = await startNodeProcess({
    dev: false,
    args: ['--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--presence-diff-ms', '50', '--pusher-apps', JSON.stringify(apps)],
  });
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const c of raws) c.close();
  for (const n of ownNodes) await n.kill();
  expect(await node.stop()).toBe(0);
});

describe('connection', () => {
  it('pusher-js connects on /app/:key with a numeric socket id, and pusher:ping is answered', async () => {
    const socketId = await connected(client(APP));
    expect(socketId).toMatch(/^\d+\.\d+$/);
    const c = await raw(`/app/${APP.key}?protocol=7&client=js&version=8.6.0`);
    const established = await c.waitFor(ev('pusher:connection_established'));
    expect(JSON.parse(established.data as string)).toMatchObject({ socket_id: expect.stringMatching(/^\d+\.\d+$/), activity_timeout: 120 });
    c.send({ event: 'pusher:ping', data: {} });
    await c.waitFor(ev('pusher:pong'));
  });

  it('an unknown key, a missing, malformed or unsupported protocol version get pusher:error and the close code Pusher uses', async () => {
    const cases: [string, number][] = [
      [`/app/nope?protocol=7`, 4001],
      [`/app/${APP.key}`, 4008],
      [`/app/${APP.key}?protocol=seven`, 4006],
      [`/app/${APP.key}?protocol=6`, 4007],
      [`/app/${APP.key}/extra?protocol=7`, 4005],
    ];
    for (const [path, code] of cases) {
      const c = await raw(path);
      const err = await c.waitFor(ev('pusher:error'));
      expect((err.data as { code: number }).code).toBe(code);
      expect((await c.waitClosed()).code).toBe(code);
    }
  });
});

describe('one room, two protocols', () => {
  it('SDK triggers and v1 publishes reach pusher-js and v1 members in one order, under their event names, and are in history', async () => {
    const p = client(APP);
    const channel = await subscribed(p, 'orders.eu');
    const got: { event: string; data: unknown }[] = [];
    channel.bind_global((event: string, data: unknown) => {
      if (!event.startsWith('pusher')) got.push({ event, data });
    });
    // A raw Pusher client beside pusher-js: every frame it gets must be a Pusher frame (no v1 presence diff).
    const rawPusher = await raw(`/app/${APP.key}?protocol=7`);
    rawPusher.send({ event: 'pusher:subscribe', data: { channel: 'orders.eu' } });
    await rawPusher.waitFor(ev('pusher_internal:subscription_succeeded'));
    const v1 = await TestClient.connect(`ws://127.0.0.1:${node.port}/ws`, {
      token: await token('vera', { tenant: APP.id, rooms: { join: ['*'], publish: ['*'] } }),
    });
    raws.push(v1);
    expect(await v1.request({ type: 'join', room: 'orders.eu' })).toMatchObject({ type: 'joined' });
    // v1 members get presence as batched diffs; the Pusher members of the same room must not.
    await v1.waitFor((f) => f.type === 'presence.diff', 10_000, 'the join diff');
    const sdk = serverSdk(APP, node.port);
    const N = 20;
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      sends.push(
        i % 2 === 0
          ? sdk.trigger('orders.eu', 'order-placed', JSON.stringify({ i }))
          : v1.request({ type: 'publish', room: 'orders.eu', data: { i }, event: 'v1-note' }),
      );
    }
    await Promise.all(sends);
    await waitFor(() => got.length === N && v1.messages('orders.eu').length === N, 10_000, 'every message on both protocols');
    const v1Order = v1.messages('orders.eu').map((m) => m.data as { i: number } | string);
    const asI = (d: unknown): number => (typeof d === 'string' ? (JSON.parse(d) as { i: number }).i : (d as { i: number }).i);
    // One order: both protocols see the same sequence of messages.
    expect(got.map((g) => asI(g.data))).toEqual(v1Order.map(asI));
    expect(new Set(got.map((g) => asI(g.data))).size).toBe(N);
    for (const g of got) expect(g.event).toBe(asI(g.data) % 2 === 0 ? 'order-placed' : 'v1-note');
    const seqs = v1.messages('orders.eu').map((m) => m.seq as number);
    expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    const history = (await (
      await fetch(`${node.url}/api/rooms/orders.eu/history?tenant=${APP.id}&limit=100`, { headers: { authorization: `Bearer ${API_KEY}` } })
    ).json()) as { messages: { seq: number; event?: string }[] };
    expect(history.messages.map((m) => m.seq)).toEqual(seqs);
    expect(history.messages.filter((m) => m.event === 'order-placed')).toHaveLength(N / 2);
    await waitFor(
      () => rawPusher.frames.filter((f) => (f as Record<string, unknown>).channel === 'orders.eu').length >= N + 1,
      10_000,
      'raw Pusher deliveries',
    );
    expect(rawPusher.frames.filter((f) => typeof (f as Record<string, unknown>).event !== 'string')).toEqual([]);
  });

  it('a trigger with socket_id is not delivered to that connection; info returns the subscription count', async () => {
    const a = client(APP);
    const b = client(APP);
    const ca = await subscribed(a, 'excluded');
    const cb = await subscribed(b, 'excluded');
    const gotA: unknown[] = [];
    const gotB: unknown[] = [];
    ca.bind('ping', (d: unknown) => gotA.push(d));
    cb.bind('ping', (d: unknown) => gotB.push(d));
    const sdk = serverSdk(APP, node.port);
    const res = await sdk.trigger('excluded', 'ping', 'one', { socket_id: a.connection.socket_id, info: 'subscription_count' });
    expect(await res.json()).toEqual({ channels: { excluded: { subscription_count: 2 } } });
    await sdk.trigger('excluded', 'ping', 'two');
    await waitFor(() => gotB.length === 2 && gotA.length === 1, 10_000, 'deliveries');
    expect(gotA).toEqual(['two']);
    expect(gotB).toEqual(['one', 'two']);
  });

  it('batch_events keeps its order on one channel', async () => {
    const a = client(APP);
    const ch = await subscribed(a, 'batched');
    const got: string[] = [];
    ch.bind_global((event: string, data: unknown) => {
      if (event === 'step') got.push(data as string);
    });
    const batch = Array.from({ length: 10 }, (_, i) => ({ channel: 'batched', name: 'step', data: `s${i}` }));
    await serverSdk(APP, node.port).triggerBatch(batch);
    await waitFor(() => got.length === 10, 10_000, 'batch');
    expect(got).toEqual(batch.map((b) => b.data));
  });
});

describe('private and presence channels', () => {
  it('a private channel needs the SDK’s signature: a wrong one is a subscription_error (401), the right one subscribes', async () => {
    await expect(subscribed(client(APP, { secret: 'not-the-secret-0' }), 'private-vault')).rejects.toMatchObject({ detail: { status: 401 } });
    await subscribed(client(APP), 'private-vault');
  });

  it('presence: member lists with user_info, one member_added per user (not per tab), member_removed when the last tab goes, cluster counts over HTTP', async () => {
    const alice = client(APP, { user: { id: 'alice', info: { name: 'Alice' } } });
    const pa = await subscribed<PresenceChannel>(alice, 'presence-lobby');
    expect(pa.members.count).toBe(1);
    const added: string[] = [];
    const removed: string[] = [];
    pa.bind('pusher:member_added', (m: { id: string }) => added.push(m.id));
    pa.bind('pusher:member_removed', (m: { id: string }) => removed.push(m.id));
    const bobTab1 = client(APP, { user: { id: 'bob', info: { name: 'Bob' } } });
    const bobTab2 = client(APP, { user: { id: 'bob', info: { name: 'Bob' } } });
    const pb = await subscribed<PresenceChannel>(bobTab1, 'presence-lobby');
    await subscribed<PresenceChannel>(bobTab2, 'presence-lobby');
    expect(pb.members.count).toBe(2);
    expect(pb.members.get('alice')).toEqual({ id: 'alice', info: { name: 'Alice' } });
    await waitFor(() => added.length >= 1, 10_000, 'member_added');
    const sdk = serverSdk(APP, node.port);
    const users = (await (await sdk.get({ path: '/channels/presence-lobby/users' })).json()) as { users: { id: string }[] };
    expect(users.users.map((u) => u.id).sort()).toEqual(['alice', 'bob']);
    const info = await (await sdk.get({ path: '/channels/presence-lobby', params: { info: 'user_count,subscription_count' } })).json();
    expect(info).toEqual({ occupied: true, user_count: 2, subscription_count: 3 });
    const list = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
    expect(list).toEqual({ channels: { 'presence-lobby': { user_count: 2 } } });
    bobTab1.disconnect();
    // Bob still has a tab: no member_removed.
    await waitFor(
      async () => (await (await sdk.get({ path: '/channels/presence-lobby', params: { info: 'subscription_count' } })).json()).subscription_count === 2,
      10_000,
      'tab 1 gone',
    );
    bobTab2.disconnect();
    await waitFor(() => removed.length >= 1, 10_000, 'member_removed');
    expect(added).toEqual(['bob']);
    expect(removed).toEqual(['bob']);
  });

  it('a full presence channel refuses a new user (maxPresenceMembers)', async () => {
    for (const id of ['u1', 'u2', 'u3']) await subscribed(client(APP, { user: { id } }), 'presence-small');
    await expect(subscribed(client(APP, { user: { id: 'u4' } }), 'presence-small')).rejects.toMatchObject({ detail: { status: 403 } });
  });

  it('channel_data that does not match its signature is refused', async () => {
    const c = await raw(`/app/${APP.key}?protocol=7`);
    const est = await c.waitFor(ev('pusher:connection_established'));
    const socketId = (JSON.parse(est.data as string) as { socket_id: string }).socket_id;
    const signed = serverSdk(APP, node.port).authorizeChannel(socketId, 'presence-x', { user_id: 'mallory', user_info: {} });
    c.send({ event: 'pusher:subscribe', data: { channel: 'presence-x', auth: signed.auth, channel_data: JSON.stringify({ user_id: 'admin' }) } });
    const err = await c.waitFor(ev('pusher:subscription_error'));
    expect(err).toMatchObject({ channel: 'presence-x', data: { status: 401 } });
  });
});

describe('client events', () => {
  it('relayed to the other members (with user_id on presence), never echoed to the sender', async () => {
    const a = client(APP, { user: { id: 'ann' } });
    const b = client(APP, { user: { id: 'ben' } });
    const ca = await subscribed<PresenceChannel>(a, 'presence-typing');
    const cb = await subscribed<PresenceChannel>(b, 'presence-typing');
    const atA: unknown[] = [];
    const atB: { data: unknown; meta: unknown }[] = [];
    ca.bind('client-typing', (d: unknown) => atA.push(d));
    cb.bind('client-typing', (d: unknown, meta: unknown) => atB.push({ data: d, meta }));
    expect(ca.trigger('client-typing', { on: true })).toBe(true);
    await waitFor(() => atB.length === 1, 10_000, 'client event at ben');
    expect(atB[0]).toEqual({ data: { on: true }, meta: { user_id: 'ann' } });
    // A later server event proves the sender's copy would have arrived by now.
    await serverSdk(APP, node.port).trigger('presence-typing', 'client-typing', 'marker');
    await waitFor(() => atA.length === 1, 10_000, 'marker');
    expect(atA).toEqual(['marker']);
  });

  it('refused on a public channel, in an app that disallows them, and over the rate limit (4301)', async () => {
    const pub = await raw(`/app/${APP.key}?protocol=7`);
    await pub.waitFor(ev('pusher:connection_established'));
    pub.send({ event: 'pusher:subscribe', data: { channel: 'open' } });
    await pub.waitFor(ev('pusher_internal:subscription_succeeded'));
    pub.send({ event: 'client-x', channel: 'open', data: {} });
    expect((await pub.waitFor(ev('pusher:error'))).data).toMatchObject({ message: expect.stringMatching(/private and presence/) });

    const q = client(QUIET);
    const ch = await subscribed(q, 'private-q');
    const errors: unknown[] = [];
    q.connection.bind('error', (e: unknown) => errors.push(e));
    ch.trigger('client-x', {});
    await waitFor(() => errors.length === 1, 10_000, 'client events disabled');
    expect(JSON.stringify(errors[0])).toMatch(/enable this feature/);

    // Over the app's maxEventBytes (2,000 here): refused and counted, the connection lives.
    const before = await errorsTotal();
    const big = client(APP);
    const bc = await subscribed(big, 'private-big');
    const bigErrors: { data?: { message?: string } }[] = [];
    big.connection.bind('error', (e: { data?: { message?: string } }) => bigErrors.push(e));
    bc.trigger('client-big', { blob: 'x'.repeat(APP.maxEventBytes! + 1) });
    await waitFor(() => bigErrors.length === 1, 10_000, 'over-size client event refused');
    expect(bigErrors[0]?.data?.message).toMatch(/over 2000/);
    expect(big.connection.state).toBe('connected');
    const after = await errorsTotal();
    expect((after.get('frame_too_large') ?? 0) - (before.get('frame_too_large') ?? 0)).toBe(1);
    expect((after.get('forbidden') ?? 0) - (before.get('forbidden') ?? 0)).toBe(0);

    const r = client(APP);
    const rc = await subscribed(r, 'private-rate');
    const rateErrors: { data?: { code?: number } }[] = [];
    r.connection.bind('error', (e: { data?: { code?: number } }) => rateErrors.push(e));
    for (let i = 0; i < 15; i++) rc.trigger('client-burst', { i });
    await waitFor(() => rateErrors.length >= 1, 10_000, 'rate limit');
    expect(rateErrors[0]?.data?.code).toBe(4301);
  });
});

describe('users', () => {
  it('a signed-in user gets the SDK’s sendToUser events on every connection, and terminate_connections closes them (4009)', async () => {
    const tab1 = client(APP, { signinAs: 'uma' });
    const tab2 = client(APP, { signinAs: 'uma' });
    const got: unknown[] = [];
    for (const t of [tab1, tab2]) {
      t.signin();
      t.user.bind('notice', (d: unknown) => got.push(d));
    }
    await waitFor(() => tab1.user.user_data?.id === 'uma' && tab2.user.user_data?.id === 'uma', 10_000, 'signed in');
    const sdk = serverSdk(APP, node.port);
    // The user channel's subscribe may still be in flight: send until both tabs have one.
    await waitFor(
      async () => {
        await sdk.sendToUser('uma', 'notice', { n: 1 });
        return got.length >= 2;
      },
      10_000,
      'user events',
      200,
    );
    expect(got.slice(0, 2)).toEqual([{ n: 1 }, { n: 1 }]);

    const c = await raw(`/app/${APP.key}?protocol=7`);
    const est = await c.waitFor(ev('pusher:connection_established'));
    const socketId = (JSON.parse(est.data as string) as { socket_id: string }).socket_id;
    const signed = sdk.authenticateUser(socketId, { id: 'uma' });
    c.send({ event: 'pusher:signin', data: signed });
    await c.waitFor(ev('pusher:signin_success'));
    await sdk.terminateUserConnections('uma');
    expect((await c.waitClosed()).code).toBe(4009);
  });

  it('a signin with a wrong signature is refused, and another user’s channel cannot be subscribed', async () => {
    const c = await raw(`/app/${APP.key}?protocol=7`);
    const est = await c.waitFor(ev('pusher:connection_established'));
    const socketId = (JSON.parse(est.data as string) as { socket_id: string }).socket_id;
    const forged = serverSdk(APP, node.port, { secret: 'wrong-secret-000' }).authenticateUser(socketId, { id: 'root' });
    c.send({ event: 'pusher:signin', data: forged });
    expect((await c.waitFor(ev('pusher:error'))).data).toMatchObject({ message: expect.stringMatching(/signature/) });
    c.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-root' } });
    expect(await c.waitFor(ev('pusher:subscription_error'))).toMatchObject({ data: { status: 403 } });
  });
});

describe('resume extension (opt-in, invisible to stock clients)', () => {
  it('a client that connects with sb_resume=1 gets seq/epoch on events and, subscribing with since, every event it missed, in order', async () => {
    const sdk = serverSdk(APP, node.port);
    const first = await raw(`/app/${APP.key}?protocol=7&sb_resume=1`);
    await first.waitFor(ev('pusher:connection_established'));
    first.send({ event: 'pusher:subscribe', data: { channel: 'ticker' } });
    await first.waitFor(ev('pusher_internal:subscription_succeeded'));
    await sdk.trigger('ticker', 'tick', 't1');
    const t1 = await first.waitFor(ev('tick'));
    expect(t1).toMatchObject({ data: 't1', seq: 1, epoch: expect.any(String) });
    first.close();
    for (const d of ['t2', 't3', 't4']) await sdk.trigger('ticker', 'tick', d);

    const back = await raw(`/app/${APP.key}?protocol=7&sb_resume=1`);
    await back.waitFor(ev('pusher:connection_established'));
    back.send({ event: 'pusher:subscribe', data: { channel: 'ticker', since: { seq: t1.seq, epoch: t1.epoch } } });
    const ok = await back.waitFor(ev('pusher_internal:subscription_succeeded'));
    expect(JSON.parse(ok.data as string)).toEqual({ recovery: 'recovered', missed: 3, seq: 4, epoch: t1.epoch });
    await sdk.trigger('ticker', 'tick', 't5');
    await waitFor(() => back.frames.filter(ev('tick')).length === 4, 10_000, 'missed and live ticks');
    expect(back.frames.filter(ev('tick')).map((f) => [f.data, f.seq])).toEqual([
      ['t2', 2],
      ['t3', 3],
      ['t4', 4],
      ['t5', 5],
    ]);

    const stale = await raw(`/app/${APP.key}?protocol=7&sb_resume=1`);
    await stale.waitFor(ev('pusher:connection_established'));
    stale.send({ event: 'pusher:subscribe', data: { channel: 'ticker', since: { seq: 1, epoch: 'another-epoch' } } });
    expect(JSON.parse((await stale.waitFor(ev('pusher_internal:subscription_succeeded'))).data as string)).toMatchObject({
      recovery: 'reset',
      missed: 0,
      seq: 5,
    });

    // A stock client sees neither seq nor epoch, and its since is ignored.
    const stock = await raw(`/app/${APP.key}?protocol=7`);
    await stock.waitFor(ev('pusher:connection_established'));
    stock.send({ event: 'pusher:subscribe', data: { channel: 'ticker', since: { seq: 1, epoch: t1.epoch } } });
    expect((await stock.waitFor(ev('pusher_internal:subscription_succeeded'))).data).toBe('{}');
    await sdk.trigger('ticker', 'tick', 't6');
    const t6 = await stock.waitFor(ev('tick'));
    expect(Object.keys(t6).sort()).toEqual(['channel', 'data', 'event']);
  });
});

describe('metrics', () => {
  it('connections are counted by protocol, Pusher publishes by source', async () => {
    await connected(client(APP));
    const text = await (await fetch(`${node.url}/metrics`)).text();
    const families = parsePrometheusText(text);
    const byProtocol = families.get('switchboard_protocol_connections')?.samples ?? [];
    expect(byProtocol.find((s) => s.labels.protocol === 'pusher')?.value ?? 0).toBeGreaterThan(0);
    const total = families.get('switchboard_connections')?.samples[0]?.value ?? 0;
    expect(byProtocol.reduce((n, s) => n + s.value, 0)).toBe(total);
    const published = families.get('switchboard_messages_published_total')?.samples ?? [];
    expect(published.find((s) => s.labels.source === 'pusher')?.value ?? 0).toBeGreaterThan(0);
  });
});

describe('cache channels', () => {
  it('a subscriber gets pusher:cache_miss on an empty cache channel, then the last event', async () => {
    const c = await raw(`/app/${APP.key}?protocol=7`);
    await c.waitFor(ev('pusher:connection_established'));
    c.send({ event: 'pusher:subscribe', data: { channel: 'cache-price' } });
    await c.waitFor(ev('pusher:cache_miss'));
    const sdk = serverSdk(APP, node.port);
    await sdk.trigger('cache-price', 'tick', '1');
    await sdk.trigger('cache-price', 'tick', '2');
    const late = await raw(`/app/${APP.key}?protocol=7`);
    await late.waitFor(ev('pusher:connection_established'));
    late.send({ event: 'pusher:subscribe', data: { channel: 'cache-price' } });
    const tick = await late.waitFor(ev('tick'));
    expect(tick).toMatchObject({ channel: 'cache-price', data: '2' });
  });
});

describe('bad input fails alone and is counted', () => {
  it('malformed JSON, a frame without an event, a second subscribe, a bad channel name: pusher:error, the connection lives', async () => {
    const before = await errorsTotal();
    const c = await raw(`/app/${APP.key}?protocol=7`);
    await c.waitFor(ev('pusher:connection_established'));
    c.sendRaw('{not json');
    c.send({ data: {} });
    c.send({ event: 'pusher:subscribe', data: { channel: 'dup' } });
    await c.waitFor(ev('pusher_internal:subscription_succeeded'));
    c.send({ event: 'pusher:subscribe', data: { channel: 'dup' } });
    c.send({ event: 'pusher:subscribe', data: { channel: 'bad channel!' } });
    await waitFor(() => c.frames.filter(ev('pusher:error')).length === 4, 10_000, 'four errors');
    c.send({ event: 'pusher:ping', data: {} });
    await c.waitFor(ev('pusher:pong'));
    expect(c.closed).toBeNull();
    const after = await errorsTotal();
    const delta = (code: string): number => (after.get(code) ?? 0) - (before.get(code) ?? 0);
    expect(delta('bad_json')).toBe(1);
    expect(delta('bad_frame')).toBe(1);
    expect(delta('bad_request')).toBe(1);
    expect(delta('bad_room')).toBe(1);
  });

  it('HTTP API: a bad signature, a stale timestamp or a body whose MD5 differs is 401; over 100 channels 400; an over-size event 413', async () => {
    const sdk = serverSdk(APP, node.port);
    const wrong = serverSdk(APP, node.port, { secret: 'wrong-secret-000' });
    await expect(wrong.trigger('x', 'e', 'd')).rejects.toMatchObject({ status: 401 });
    const channels = Array.from({ length: 101 }, (_, i) => `c${i}`);
    // The SDK's trigger refuses 101 channels itself; post sends them (it JSON-encodes the body, its types say string).
    const tooMany = { name: 'e', data: 'd', channels } as unknown as string;
    await expect(sdk.post({ path: '/events', body: tooMany })).rejects.toMatchObject({ status: 400 });
    await expect(sdk.trigger('x', 'e', 'x'.repeat(APP.maxEventBytes! + 1))).rejects.toMatchObject({ status: 413 });
    const signedPost = (body: string, md5: string, ts: number): Promise<Response> => {
      const path = `/apps/${APP.id}/events`;
      const q = `auth_key=${APP.key}&auth_timestamp=${ts}&auth_version=1.0&body_md5=${md5}`;
      const sig = createHmac('sha256', APP.secret).update(`POST\n${path}\n${q}`).digest('hex');
      return fetch(`${node.url}${path}?${q}&auth_signature=${sig}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    };
    const body = JSON.stringify({ name: 'e', data: 'd', channel: 'x' });
    const md5 = createHash('md5').update(body).digest('hex');
    const now = Math.floor(Date.now() / 1000);
    expect((await signedPost(body, md5, now)).status).toBe(200);
    expect((await signedPost(body, md5, now - 601)).status).toBe(401);
    expect((await signedPost(body.replace('"d"', '"D"'), md5, now)).status).toBe(401);
    const counted = await errorsTotal();
    // 401s: the wrong secret, the stale timestamp, the changed body (counted as unauthorized with the rest).
    expect(counted.get('unauthorized') ?? 0).toBeGreaterThanOrEqual(3);
    // Another app's events are untouched by this app's failures, and the node serves on.
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  });
});

describe('drain', () => {
  it('SIGTERM closes every Pusher client with 4200 at its own time within the spread, and refuses new upgrades with 503', async () => {
    const n = await startNodeProcess({ args: ['--pusher-apps', JSON.stringify([APP]), '--drain-spread-ms', '2000', '--drain-timeout-ms', '20000'] });
    ownNodes.push(n);
    const conns: TestClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await TestClient.open(`ws://127.0.0.1:${n.port}/app/${APP.key}?protocol=7`);
      raws.push(c);
      conns.push(c);
      await c.waitFor(ev('pusher:connection_established'));
    }
    const closedAt: number[] = [];
    const closes = conns.map((c) => c.waitClosed(30_000).then((e) => (closedAt.push(Date.now()), e.code)));
    const stopped = n.stop();
    // While the node drains, an upgrade is refused with 503 (admission), not hung or reset.
    let refused = 0;
    await waitFor(
      async () => {
        try {
          const late = await TestClient.open(`ws://127.0.0.1:${n.port}/app/${APP.key}?protocol=7`);
          late.close();
        } catch (err) {
          if ((err as { status?: number }).status === 503) refused++;
        }
        return refused > 0 || closedAt.length === conns.length;
      },
      30_000,
      'a refused upgrade',
      50,
    );
    expect(refused).toBeGreaterThan(0);
    expect(new Set(await Promise.all(closes))).toEqual(new Set([4200]));
    // Spread: not all in one instant (the schedule spreads 40 closes over about 2 s).
    expect(Math.max(...closedAt) - Math.min(...closedAt)).toBeGreaterThan(500);
    expect(await stopped).toBe(0);
  });
});
