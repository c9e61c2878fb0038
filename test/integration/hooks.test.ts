/**
 * The app backend's hooks (src/hooks/hooks.ts, docs/hooks.md) against a real node process and a real HTTP backend
 * inside the test: `connect` (a session cookie and a header instead of a JWT), `join` (allow with presence info,
 * deny) and `publish` (allow, rewrite, deny with the app's message), each also slow (past its timeout), down (the
 * connection dropped without an answer), and answering garbage or 5xx: fail closed (`unavailable`, retryable; the connect closes 4000), or open where
 * configured; every call counted by hook and result. A second node reaches its hooks over NATS request/reply.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

type Mode = 'allow' | 'deny' | 'slow' | 'garbage' | 'error' | 'down' | 'rewrite';
const mode: Record<'connect' | 'join' | 'publish', Mode> = { connect: 'allow', join: 'allow', publish: 'allow' };
const seen: Record<string, unknown>[] = [];
/** Webhook events the node sent to the same backend (client events of `hooked-pub`). */
const webhookEvents: Record<string, unknown>[] = [];
let backend: Server;
let backendUrl = '';
let node: NodeProcess;
let openNode: NodeProcess;
const clients: TestClient[] = [];

function answer(body: Record<string, unknown>): { status: number; text: string; delayMs: number } {
  const hook = body.hook as keyof typeof mode;
  const m = mode[hook];
  if (m === 'slow') return { status: 200, text: '{"allow":true}', delayMs: 1_500 };
  if (m === 'garbage') return { status: 200, text: hook === 'connect' ? '{"allow":true}' : 'not json', delayMs: 0 };
  if (m === 'error') return { status: 500, text: 'boom', delayMs: 0 };
  if (m === 'deny') return { status: 200, text: JSON.stringify({ allow: false, message: `no ${hook} for you` }), delayMs: 0 };
  if (hook === 'connect') {
    const cookies = body.cookies as Record<string, string>;
    const headers = body.headers as Record<string, string>;
    if (cookies.sid !== 'good-session') return { status: 200, text: JSON.stringify({ allow: false, message: 'no session' }), delayMs: 0 };
    return {
      status: 200,
      text: JSON.stringify({ allow: true, user: `user-${headers['x-app'] ?? 'none'}`, rooms: { join: ['hooked-*'], publish: ['hooked-*'] } }),
      delayMs: 0,
    };
  }
  if (hook === 'join') return { status: 200, text: JSON.stringify({ allow: true, info: { name: `Name of ${String(body.user)}` } }), delayMs: 0 };
  if (m === 'rewrite')
    return {
      status: 200,
      text: JSON.stringify({ allow: true, data: { clean: String((body.data as { text: string }).text).replace('darn', '****') } }),
      delayMs: 0,
    };
  return { status: 200, text: '{"allow":true}', delayMs: 0 };
}

async function readBody(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const chunk of req) s += String(chunk);
  return s;
}

const servers: TestServer[] = [];
let nc: NatsConnection;

beforeAll(async () => {
  backend = createServer((req, res) => {
    void readBody(req).then((text) => {
      const body = JSON.parse(text) as Record<string, unknown>;
      if (req.url === '/webhook') {
        webhookEvents.push(...(body.events as Record<string, unknown>[]));
        res.writeHead(200).end();
        return;
      }
      seen.push(body);
      if (mode[body.hook as keyof typeof mode] === 'down') {
        req.socket.destroy(); // the backend goes away mid-request: no answer at all
        return;
      }
      const a = answer(body);
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(a.text);
      }, a.delayMs);
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/hook`;
  const hook = { url: backendUrl, timeoutMs: 500 };
  const hooks = { connect: { ...hook, headers: ['X-App'], cookies: ['sid'] }, join: hook, publish: hook };
  const webhooks = [
    {
      tenant: 'default',
      secret: 'hooks-test-webhook-secret',
      url: backendUrl.replace(/\/hook$/, '/webhook'),
      events: ['client_event'],
      clientEventRooms: ['hooked-pub'],
    },
  ];
  node = await startNodeProcess({ dev: false, args: ['--hooks', JSON.stringify(hooks), '--webhooks', JSON.stringify(webhooks)] });
  // The same hooks failing open (join, publish), and a node whose hooks are on NATS.
  openNode = await startNodeProcess({
    dev: false,
    args: ['--hooks', JSON.stringify({ ...hooks, join: { ...hook, failOpen: true }, publish: { ...hook, failOpen: true } })],
  });
  servers.push(...(await Promise.all([startNatsServer(), startRedisServer(), startPostgres()])));
  nc = await natsConnect({ servers: (servers[0] as TestServer).url });
});

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await Promise.all([node?.stop(), openNode?.stop()]);
  await nc?.close();
  await Promise.all(servers.map((s) => s.dispose()));
  await new Promise((r) => backend?.close(r));
});

/** A WebSocket with the session cookie and the app header, then `connect` without a token. */
async function open(n: NodeProcess, sid = 'good-session'): Promise<{ c: TestClient; reply: Frame }> {
  const c = await TestClient.open(n.wsUrl, { cookie: `theme=dark; sid=${sid}`, 'x-app': 'a1', 'x-secret': 'never-sent' });
  clients.push(c);
  const reply = await c.request({ type: 'connect', data: { app: 'web' } });
  return { c, reply };
}

async function hookCount(n: NodeProcess, hook: string, result: string): Promise<number> {
  const text = await (await fetch(`${n.url}/metrics`)).text();
  const m = new RegExp(`^switchboard_hook_requests_total\\{[^}]*hook="${hook}"[^}]*result="${result}"[^}]*\\} (\\d+)$`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('connect hook', () => {
  it('allows with the user and rights the backend answers, from the chosen cookie and header only', async () => {
    mode.connect = 'allow';
    const { reply } = await open(node);
    expect(reply).toMatchObject({ type: 'connected', user: 'user-a1', tenant: 'default' });
    const sent = seen.filter((b) => b.hook === 'connect').at(-1)!;
    expect(sent.cookies).toEqual({ sid: 'good-session' });
    expect(sent.headers).toEqual({ 'x-app': 'a1' });
    expect(sent.data).toEqual({ app: 'web' });
  });

  it('a refusal is unauthorized (4500); slow, down, 5xx and garbage are unavailable (4000), counted', async () => {
    const denied = await open(node, 'stolen');
    expect(denied.reply).toMatchObject({ type: 'error', code: 'unauthorized', message: 'no session' });
    expect((await denied.c.waitClosed()).code).toBe(4500);
    for (const m of ['slow', 'error', 'garbage', 'down'] as const) {
      mode.connect = m;
      const { c, reply } = await open(node);
      expect(reply, m).toMatchObject({ type: 'error', code: 'unavailable', retryable: true });
      expect((await c.waitClosed()).code).toBe(4000);
    }
    mode.connect = 'allow';
    expect(await hookCount(node, 'connect', 'timeout')).toBeGreaterThanOrEqual(1);
    expect(await hookCount(node, 'connect', 'error')).toBeGreaterThanOrEqual(3);
    expect(await hookCount(node, 'connect', 'deny')).toBeGreaterThanOrEqual(1);
  });
});

describe('join and publish hooks', () => {
  it('join: allowed with presence info; denied with the app message; rights of the connect answer still apply', async () => {
    mode.join = 'allow';
    const { c } = await open(node);
    expect((await c.request({ type: 'join', room: 'hooked-1' })).type).toBe('joined');
    const list = await c.request({ type: 'presence', room: 'hooked-1' });
    expect(list.members).toEqual([expect.objectContaining({ user: 'user-a1', info: { name: 'Name of user-a1' } })]);
    expect(await c.request({ type: 'join', room: 'other' })).toMatchObject({ type: 'error', code: 'forbidden' });
    mode.join = 'deny';
    expect(await c.request({ type: 'join', room: 'hooked-2' })).toMatchObject({ type: 'error', code: 'refused', message: 'no join for you', retryable: false });
    for (const m of ['slow', 'down'] as const) {
      mode.join = m;
      expect(await c.request({ type: 'join', room: 'hooked-3' }), m).toMatchObject({ type: 'error', code: 'unavailable', retryable: true });
    }
    mode.join = 'allow';
    expect((await c.request({ type: 'join', room: 'hooked-3' })).type).toBe('joined');
    expect(c.closed).toBeNull();
  });

  it('publish: allowed as is, rewritten before it is sequenced, refused with the app message, unavailable when down', async () => {
    mode.join = 'allow';
    const { c } = await open(node);
    const reader = (await open(node)).c;
    for (const x of [c, reader]) expect((await x.request({ type: 'join', room: 'hooked-pub' })).type).toBe('joined');
    mode.publish = 'allow';
    expect((await c.request({ type: 'publish', room: 'hooked-pub', data: { text: 'hi' } })).type).toBe('ack');
    mode.publish = 'rewrite';
    expect((await c.request({ type: 'publish', room: 'hooked-pub', data: { text: 'darn it' } })).type).toBe('ack');
    mode.publish = 'deny';
    expect(await c.request({ type: 'publish', room: 'hooked-pub', data: { text: 'x' } })).toMatchObject({ code: 'refused', message: 'no publish for you' });
    for (const m of ['error', 'down', 'slow'] as const) {
      mode.publish = m;
      expect(await c.request({ type: 'publish', room: 'hooked-pub', data: { text: 'y' } }), m).toMatchObject({ code: 'unavailable', retryable: true });
    }
    mode.publish = 'allow';
    const got = await reader.waitForMessages('hooked-pub', 2);
    expect(got.map((m) => [m.seq, m.data])).toEqual([
      [1, { text: 'hi' }],
      [2, { clean: '**** it' }],
    ]);
    // Nothing refused was sequenced: the next publish is seq 3.
    expect(await c.request({ type: 'publish', room: 'hooked-pub', data: { text: 'z' } })).toMatchObject({ type: 'ack', seq: 3 });
    // The client events the backend hears are what the room got (the rewrite, not what the client sent), nothing refused.
    await waitFor(() => webhookEvents.length >= 3, 10_000, 'three client events');
    expect(webhookEvents.map((e) => [e.name, e.data])).toEqual([
      ['client_event', { text: 'hi' }],
      ['client_event', { clean: '**** it' }],
      ['client_event', { text: 'z' }],
    ]);
  });

  it('failOpen: a join or publish hook that does not answer lets the request through unchanged', async () => {
    mode.join = 'allow';
    const { c } = await open(openNode);
    mode.join = 'error';
    expect((await c.request({ type: 'join', room: 'hooked-open' })).type).toBe('joined');
    mode.publish = 'slow';
    expect(await c.request({ type: 'publish', room: 'hooked-open', data: { text: 'darn' } })).toMatchObject({ type: 'ack', seq: 1 });
    mode.join = 'allow';
    mode.publish = 'allow';
    expect(await hookCount(openNode, 'publish', 'timeout')).toBe(1);
  });
});

describe('hooks over NATS request/reply', () => {
  it('a cluster node asks nats: hooks; a backend that is not subscribed is unavailable', async () => {
    const [nats, redis, pg] = servers as [TestServer, TestServer, TestServer];
    const sub = nc.subscribe('app.hooks.connect', {
      callback: (_err, msg) => {
        const body = msg.json<{ data?: { name?: string } }>();
        msg.respond(
          JSON.stringify(body.data?.name === 'nats-user' ? { allow: true, user: 'nats-user', rooms: { join: ['*'], publish: ['*'] } } : { allow: false }),
        );
      },
    });
    await nc.flush();
    const n = await startNodeProcess({
      dev: false,
      args: [
        '--nats',
        nats.url,
        '--redis',
        redis.url,
        '--database',
        pg.url,
        '--durable-log',
        'memory',
        '--hooks',
        JSON.stringify({ connect: { url: 'nats:app.hooks.connect', timeoutMs: 1000 }, publish: { url: 'nats:app.hooks.publish', timeoutMs: 300 } }),
      ],
    });
    try {
      const c = await TestClient.open(n.wsUrl);
      clients.push(c);
      expect(await c.request({ type: 'connect', data: { name: 'nats-user' } })).toMatchObject({ type: 'connected', user: 'nats-user' });
      expect((await c.request({ type: 'join', room: 'bus' })).type).toBe('joined');
      // No service answers app.hooks.publish: fail closed.
      expect(await c.request({ type: 'publish', room: 'bus', data: 1 })).toMatchObject({ code: 'unavailable' });
      const other = await TestClient.open(n.wsUrl);
      clients.push(other);
      expect(await other.request({ type: 'connect', data: { name: 'someone' } })).toMatchObject({ type: 'error', code: 'unauthorized' });
    } finally {
      sub.unsubscribe();
      await n.stop();
    }
  });
});
