/**
 * Webhooks on a real embedded node process (docs/hooks.md), received by real HTTP servers inside the test: every
 * event type in both formats with its signature verified — Pusher ones by the `pusher` SDK's own validator
 * (`pusher.webhook(req).isValid()`), native ones by the documented HMAC scheme; one member per user however many
 * tabs; the grace period's debounce; batching; retries against a failing receiver, then the dead letter, counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyNativeSignature } from '../../src/auth/webhook-signing.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { parsePrometheusText } from '../helpers/prom-text.js';
import { connected, pusherJs, serverSdk, subscribed, type PresenceChannel, type PusherJS, type TestApp } from '../helpers/pusher-clients.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { WebhookReceiver, type ReceivedRequest } from '../helpers/webhook-receiver.js';
import { TestClient } from '../helpers/ws-client.js';

const APP: TestApp = { id: '7001', key: 'hook-key', secret: 'hook-secret-0123456', clientEvents: true };
const SECRET = 'native-secret-0123456789';
const GRACE_MS = 1000;
const RETRY_DEADLINE_MS = 4000;

let node: NodeProcess;
let pusherHooks: WebhookReceiver;
let nativeHooks: WebhookReceiver;
let failing: WebhookReceiver;
const pusherClients: PusherJS[] = [];
const v1Clients: TestClient[] = [];

function pusherOn(user?: string): PusherJS {
  const c = pusherJs(APP, node.port, user !== undefined ? { user: { id: user, info: { name: user } } } : {});
  pusherClients.push(c);
  return c;
}

async function v1(user: string, tenant = 'acme'): Promise<TestClient> {
  const c = await TestClient.connect(node.wsUrl, { token: await token(user, { tenant, rooms: { join: ['*'], publish: ['*'] } }) });
  v1Clients.push(c);
  return c;
}

/** Events received so far with `name` (and room), unique by id. */
function named(r: WebhookReceiver, name: string, room?: string): Record<string, unknown>[] {
  return r.unique().filter((e) => e.name === name && (room === undefined || e.room === room || e.channel === room));
}

function pusherValid(req: ReceivedRequest): boolean {
  return serverSdk(APP, node.port)
    .webhook({ headers: req.headers as Record<string, string>, rawBody: req.rawBody })
    .isValid();
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return (parsePrometheusText(text).get(name)?.samples ?? []).reduce((n, s) => n + s.value, 0);
}

beforeAll(async () => {
  [pusherHooks, nativeHooks, failing] = await Promise.all([WebhookReceiver.start(), WebhookReceiver.start(), WebhookReceiver.start()]);
  const app = {
    ...APP,
    webhooks: [
      {
        url: pusherHooks.url,
        events: ['room_occupied', 'room_vacated', 'member_added', 'member_removed', 'client_event'],
        clientEventRooms: ['private-*', 'presence-*'],
      },
    ],
  };
  const webhooks = [
    { tenant: 'acme', secret: SECRET, url: nativeHooks.url, clientEventRooms: ['chat-*'] },
    { tenant: 'flaky', secret: SECRET, url: failing.url },
  ];
  node = await startNodeProcess({
    dev: false,
    args: [
      '--jwt-secret',
      JWT_SECRET,
      '--api-key',
      API_KEY,
      '--pusher-apps',
      JSON.stringify([app]),
      '--webhooks',
      JSON.stringify(webhooks),
      '--webhook-grace-ms',
      String(GRACE_MS),
      '--webhook-batch-ms',
      '100',
      '--webhook-retry-deadline-ms',
      String(RETRY_DEADLINE_MS),
    ],
  });
});

afterAll(async () => {
  for (const c of pusherClients) c.disconnect();
  for (const c of v1Clients) c.close();
  expect(await node.stop()).toBe(0);
  await Promise.all([pusherHooks.close(), nativeHooks.close(), failing.close()]);
});

describe('Pusher format', () => {
  it('channel_occupied, member_added once per user (two tabs), client_event, member_removed and channel_vacated, each valid for the pusher SDK', async () => {
    const tab1 = pusherOn('alice');
    const tab2 = pusherOn('alice');
    const ch = await subscribed<PresenceChannel>(tab1, 'presence-room');
    await subscribed<PresenceChannel>(tab2, 'presence-room');
    await waitFor(() => named(pusherHooks, 'member_added', 'presence-room').length === 1, 10_000, 'member_added');
    const socketId = await connected(tab1);
    ch.trigger('client-typing', { on: true });
    await waitFor(() => named(pusherHooks, 'client_event', 'presence-room').length === 1, 10_000, 'client_event');
    tab1.disconnect();
    tab2.disconnect();
    await waitFor(() => named(pusherHooks, 'channel_vacated', 'presence-room').length === 1, 10_000, 'channel_vacated');

    const events = pusherHooks.unique().filter((e) => e.channel === 'presence-room');
    expect(events.map((e) => e.name)).toEqual(['channel_occupied', 'member_added', 'client_event', 'member_removed', 'channel_vacated']);
    expect(events[1]).toMatchObject({ channel: 'presence-room', user_id: 'alice' });
    expect(events[2]).toMatchObject({ event: 'client-typing', data: JSON.stringify({ on: true }), socket_id: socketId, user_id: 'alice' });
    expect(events[3]).toMatchObject({ user_id: 'alice' });
    for (const e of events) expect(e).toMatchObject({ id: expect.any(String), time_ms: expect.any(Number) });
    expect(pusherHooks.requests.length).toBeGreaterThan(0);
    for (const req of pusherHooks.requests) {
      expect(req.headers['x-pusher-key']).toBe(APP.key);
      expect(pusherValid(req)).toBe(true);
      expect(req.body.time_ms).toEqual(expect.any(Number));
    }
    // A tampered body or another secret is refused by the same validator.
    const req = pusherHooks.requests[0]!;
    expect(
      serverSdk(APP, node.port)
        .webhook({ headers: req.headers as Record<string, string>, rawBody: req.rawBody.replace('presence', 'presenc3') })
        .isValid(),
    ).toBe(false);
    expect(
      serverSdk(APP, node.port, { secret: 'another-secret-0123' })
        .webhook({ headers: req.headers as Record<string, string>, rawBody: req.rawBody })
        .isValid(),
    ).toBe(false);
  });

  it('a public channel reports occupancy only (its members are connections, not users)', async () => {
    const c = pusherOn();
    await subscribed(c, 'public-news');
    await waitFor(() => named(pusherHooks, 'channel_occupied', 'public-news').length === 1, 10_000, 'occupied');
    c.disconnect();
    await waitFor(() => named(pusherHooks, 'channel_vacated', 'public-news').length === 1, 10_000, 'vacated');
    expect(
      pusherHooks
        .unique()
        .filter((e) => e.channel === 'public-news')
        .map((e) => e.name),
    ).toEqual(['channel_occupied', 'channel_vacated']);
  });
});

describe('native format', () => {
  it('room_occupied, member_added, client_event, member_removed, room_vacated with ids, times and a valid signature', async () => {
    const a = await v1('u1');
    await a.request({ type: 'join', room: 'chat-1' });
    await a.request({ type: 'publish', room: 'chat-1', event: 'said', data: { text: 'hi' } });
    await a.request({ type: 'leave', room: 'chat-1' });
    await waitFor(() => named(nativeHooks, 'room_vacated', 'chat-1').length === 1, 10_000, 'room_vacated');
    const events = nativeHooks.unique().filter((e) => e.room === 'chat-1');
    expect(events.map((e) => e.name)).toEqual(['room_occupied', 'member_added', 'client_event', 'member_removed', 'room_vacated']);
    expect(events[1]).toMatchObject({ tenant: 'acme', room: 'chat-1', user: 'u1' });
    expect(events[2]).toMatchObject({ user: 'u1', event: 'said', data: { text: 'hi' }, connection: expect.any(String) });
    const ts = events.map((e) => e.ts as number);
    expect([...ts].sort((x, y) => x - y)).toEqual(ts);
    // The removal waited for the grace period.
    expect(ts[3]! - ts[2]!).toBeGreaterThanOrEqual(GRACE_MS - 50);
    for (const req of nativeHooks.requests) {
      const header = req.headers['x-switchboard-signature'] as string;
      expect(verifyNativeSignature(SECRET, header, req.rawBody)).toBe(true);
      expect(verifyNativeSignature('another-secret-0123456', header, req.rawBody)).toBe(false);
      expect(verifyNativeSignature(SECRET, header, req.rawBody.replace('acme', 'acmf'))).toBe(false);
    }
  });

  it('client events only in rooms that opted in; a room outside the patterns of one webhook has none of its events', async () => {
    const a = await v1('u2');
    await a.request({ type: 'join', room: 'quiet' });
    await a.request({ type: 'publish', room: 'quiet', data: 1 });
    await a.request({ type: 'join', room: 'chat-2' });
    await waitFor(() => named(nativeHooks, 'member_added', 'chat-2').length === 1, 10_000, 'chat-2 added');
    expect(named(nativeHooks, 'client_event', 'quiet')).toEqual([]);
    expect(named(nativeHooks, 'room_occupied', 'quiet')).toHaveLength(1);
    a.close();
  });

  it('debounce: a user who leaves and comes back within the grace period, and a room that empties and fills again, report nothing', async () => {
    const a = await v1('u3');
    const b = await v1('u4');
    await a.request({ type: 'join', room: 'chat-bounce' });
    await b.request({ type: 'join', room: 'chat-marker' });
    await waitFor(() => named(nativeHooks, 'member_added', 'chat-bounce').length === 1, 10_000, 'added');
    await waitFor(() => named(nativeHooks, 'member_added', 'chat-marker').length === 1, 10_000, 'marker added');
    // u3 leaves (the room is empty) and is back in a new connection within the grace period.
    a.close();
    const again = await v1('u3');
    await again.request({ type: 'join', room: 'chat-bounce' });
    // Barrier: the marker room's removal is due after the bounce's would have been; once it arrived, that had its turn.
    await b.request({ type: 'leave', room: 'chat-marker' });
    await waitFor(() => named(nativeHooks, 'member_removed', 'chat-marker').length === 1, 10_000, 'marker removed');
    expect(
      nativeHooks
        .unique()
        .filter((e) => e.room === 'chat-bounce')
        .map((e) => e.name),
    ).toEqual(['room_occupied', 'member_added']);
  });

  it('batches events of one target into one request (up to the batch size)', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, (_, i) => v1(`batch-${i}`)));
    await Promise.all(clients.map((c) => c.request({ type: 'join', room: 'chat-batch' })));
    await waitFor(() => named(nativeHooks, 'member_added', 'chat-batch').length === 5, 10_000, '5 added');
    const requests = nativeHooks.requests.filter((r) => r.body.events.some((e) => e.room === 'chat-batch'));
    expect(requests.length).toBeLessThan(6);
    for (const c of clients) c.close();
  });
});

describe('retries and dead letters', () => {
  it('retries a failing receiver with backoff until it answers 2xx', async () => {
    let failures = 0;
    failing.answer = () => (failures++ < 2 ? 500 : 200);
    const a = await v1('r1', 'flaky');
    await a.request({ type: 'join', room: 'retry' });
    await waitFor(() => failing.requests.length >= 3, 10_000, 'three attempts');
    // The same events each time (same ids); the third attempt was answered 2xx.
    const ids = failing.requests.slice(0, 3).map((r) => r.body.events.map((e) => e.id).join());
    expect(new Set(ids).size).toBe(1);
    expect(failing.unique().map((e) => e.name)).toEqual(['room_occupied', 'member_added']);
    // r1 stays (its leave would be dead-lettered by the next test).
  });

  it('dead-letters after the retry deadline, counts it, and does not send those events again', async () => {
    failing.answer = () => 503;
    const before = await metric('switchboard_webhook_dead_letters_total');
    const start = failing.requests.length;
    const a = await v1('r2', 'flaky');
    await a.request({ type: 'join', room: 'dead' });
    await waitFor(async () => (await metric('switchboard_webhook_dead_letters_total')) >= before + 2, RETRY_DEADLINE_MS + 10_000, 'dead letters', 100);
    const attempts = failing.requests.length - start;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(await metric('switchboard_webhook_requests_total')).toBeGreaterThan(0);
    const dead = new Set(failing.requests.slice(start).flatMap((r) => r.body.events.map((e) => e.id)));
    // Only this test's events were sent meanwhile: the room's occupied and r2's member_added.
    expect(dead.size).toBe(2);
    // Meanwhile the node served its clients as usual; once the receiver is back, only new events come.
    failing.answer = () => 200;
    const b = await v1('r3', 'flaky');
    await b.request({ type: 'join', room: 'dead' });
    await waitFor(() => failing.events().some((e) => e.user === 'r3'), 10_000, "r3's member_added");
    const after = failing.requests.slice(failing.requests.findIndex((r) => r.body.events.some((e) => e.user === 'r3')));
    expect(after.flatMap((r) => r.body.events).filter((e) => dead.has(e.id))).toEqual([]);
    a.close();
    b.close();
  });
});
