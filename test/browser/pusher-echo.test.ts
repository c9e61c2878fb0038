/**
 * Laravel Echo 2 with pusher-js 8, real and unmodified (their browser builds: laravel-echo's dist/echo.iife.js,
 * pusher-js's dist/web/pusher.js), in Debian's Chromium (playwright-core), against a 2-node cluster of real
 * node processes over real nats-server (JetStream), redis-server and PostgreSQL. The test plays the Laravel
 * backend: a loopback HTTP server serves the page and Echo's auth endpoints (`/broadcasting/auth`,
 * `/broadcasting/user-auth`, signed with the `pusher` 5 SDK; the user is Echo's `bearerToken`), and triggers
 * events with the SDK. Covered: `Echo.channel().listen()` with Echo's event namespace (a dotted name and an
 * `App\Events\` one), `Echo.private()` authorized through the auth endpoint (and refused by it) with whispers
 * to the other page and not the sender, `Echo.join()` with `here`/`joining`/`leaving` across pages on two nodes
 * (one user's two tabs on two nodes are one `joining` and one `leaving`), and signin with an event to the user.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { serverSdk, type TestApp } from '../helpers/pusher-clients.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { JWT_SECRET } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (scripts/install-system-deps.sh installs Debian's chromium)`);

const APP: TestApp = { id: '4001', key: 'echo-key', secret: 'echo-secret-0123456', clientEvents: true };
const PUSHER_JS = fileURLToPath(new URL('../../node_modules/pusher-js/dist/web/pusher.js', import.meta.url));
const ECHO_JS = fileURLToPath(new URL('../../node_modules/laravel-echo/dist/echo.iife.js', import.meta.url));
/** Users the backend knows (Echo sends the bearer token; the backend maps it to the user, as Sanctum would). */
const USERS: Record<string, { id: number; name: string }> = { ann: { id: 1, name: 'Ann' }, ben: { id: 2, name: 'Ben' }, cy: { id: 3, name: 'Cy' } };
/** What the backend refuses: mallory may not listen on private chat channels. */
const REFUSED = new Set(['mallory']);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Echo on Switchboard</title>
<script src="/js/pusher.js"></script>
<script src="/js/echo.iife.js"></script>
</head><body><p>Laravel Echo test page</p></body></html>`;

/** The page-side objects the test uses: Laravel Echo's API, typed as far as the test calls it. */
interface EchoChannel {
  listen(event: string, cb: (data: unknown) => void): EchoChannel;
  listenForWhisper(event: string, cb: (data: unknown) => void): EchoChannel;
  whisper(event: string, data: unknown): EchoChannel;
  subscribed(cb: () => void): EchoChannel;
  error(cb: (err: unknown) => void): EchoChannel;
  here(cb: (members: unknown[]) => void): EchoChannel;
  joining(cb: (member: unknown) => void): EchoChannel;
  leaving(cb: (member: unknown) => void): EchoChannel;
}
interface EchoInstance {
  channel(name: string): EchoChannel;
  private(name: string): EchoChannel;
  join(name: string): EchoChannel;
  socketId(): string;
  connector: {
    signin(): void;
    pusher: { connection: { state: string }; user: { user_data?: { id: string } | null; bind(event: string, cb: (data: unknown) => void): void } };
  };
}
interface EchoWindow {
  Echo: { default: new (options: Record<string, unknown>) => EchoInstance };
  echo: EchoInstance;
  log: { what: string; data: unknown }[];
}
type LogEntry = EchoWindow['log'][number];

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const contexts: BrowserContext[] = [];
const authRequests: { user: string; socketId: string; channel: string; status: number }[] = [];
let browser: Browser;
let web: Server;
let webUrl: string;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

/** The Laravel side: the page, the two browser builds, channel authorization and user authentication. */
async function backend(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', PAGE);
  if (req.method === 'GET' && url.pathname === '/js/pusher.js') return send(res, 200, 'text/javascript', readFileSync(PUSHER_JS, 'utf8'));
  if (req.method === 'GET' && url.pathname === '/js/echo.iife.js') return send(res, 200, 'text/javascript', readFileSync(ECHO_JS, 'utf8'));
  if (req.method !== 'POST') return send(res, 404, 'text/plain', 'not found');
  const form = new URLSearchParams(await readBody(req));
  const user = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const socketId = form.get('socket_id') ?? '';
  const sdk = serverSdk(APP, nodes[0]!.port);
  if (url.pathname === '/broadcasting/auth') {
    const channel = form.get('channel_name') ?? '';
    const known = USERS[user];
    const allowed = known !== undefined && !(REFUSED.has(user) && channel.startsWith('private-'));
    authRequests.push({ user, socketId, channel, status: allowed ? 200 : 403 });
    if (!allowed) return send(res, 403, 'application/json', JSON.stringify({ message: 'This action is unauthorized.' }));
    // Laravel's presence channel callback returns what the others see: here the user's id and name.
    const presence = channel.startsWith('presence-') ? { user_id: String(known.id), user_info: { id: known.id, name: known.name } } : undefined;
    return send(res, 200, 'application/json', JSON.stringify(sdk.authorizeChannel(socketId, channel, presence)));
  }
  if (url.pathname === '/broadcasting/user-auth') {
    if (USERS[user] === undefined) return send(res, 403, 'application/json', '{}');
    return send(res, 200, 'application/json', JSON.stringify(sdk.authenticateUser(socketId, { id: user, name: USERS[user].name })));
  }
  return send(res, 404, 'text/plain', 'not found');
}

/** A page (its own browser context: its own tab) with Echo connected to `node` as `user`. */
async function openEcho(node: NodeProcess, user: string): Promise<{ page: Page; context: BrowserContext }> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`page error (${user}):`, err.message));
  await page.goto(`${webUrl}/`);
  await page.evaluate(
    ({ key, port, user }) => {
      const w = globalThis as unknown as EchoWindow;
      w.log = [];
      w.echo = new w.Echo.default({
        broadcaster: 'pusher',
        key,
        cluster: 'mt1',
        wsHost: '127.0.0.1',
        wsPort: port,
        forceTLS: false,
        enabledTransports: ['ws'],
        authEndpoint: '/broadcasting/auth',
        bearerToken: user,
      });
    },
    { key: APP.key, port: node.port, user },
  );
  await page.waitForFunction(() => (globalThis as unknown as EchoWindow).echo.connector.pusher.connection.state === 'connected', undefined, {
    timeout: 20_000,
  });
  return { page, context };
}

const logOf = (page: Page): Promise<LogEntry[]> => page.evaluate(() => (globalThis as unknown as EchoWindow).log);
const entries = async (page: Page, what: string): Promise<unknown[]> => (await logOf(page)).filter((e) => e.what === what).map((e) => e.data);

async function waitForLog(page: Page, what: string, count = 1, timeoutMs = 15_000): Promise<unknown[]> {
  let got: unknown[] = [];
  await waitFor(
    async () => {
      got = await entries(page, what);
      return got.length >= count;
    },
    timeoutMs,
    `${count} × ${what} on the page`,
    50,
  );
  return got;
}

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  const nats = await startNatsServer({ jetstream: true });
  const redis = await startRedisServer();
  const pg = await startPostgres();
  servers.push(nats, redis, pg);
  for (let i = 1; i <= 2; i++) {
    nodes.push(
      await startNodeProcess({
        dev: false,
        args: [
          '--node-id',
          `node-${i}`,
          '--nats',
          nats.url,
          '--redis',
          redis.url,
          '--database',
          pg.url,
          '--presence-ttl-ms',
          '3000',
          '--presence-diff-ms',
          '50',
          '--jwt-secret',
          JWT_SECRET,
          '--pusher-apps',
          JSON.stringify([APP]),
        ],
      }),
    );
  }
  web = createServer((req, res) => {
    backend(req, res).catch((err: unknown) => send(res, 500, 'text/plain', String(err)));
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-gpu'],
  });
}, 120_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  if (web !== undefined) await new Promise((resolve) => web.close(resolve));
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe.skipIf(!HAVE_CHROMIUM)('Laravel Echo 2 + pusher-js 8 in Chromium against Switchboard', () => {
  it("Echo.channel().listen(): a dotted event name and Echo's App\\Events namespace, triggered with the pusher SDK", async () => {
    const { page } = await openEcho(nodes[1]!, 'ann');
    await page.evaluate(() => {
      const w = globalThis as unknown as EchoWindow;
      w.echo
        .channel('orders')
        .subscribed(() => w.log.push({ what: 'subscribed', data: null }))
        .listen('.order-placed', (data) => w.log.push({ what: 'order-placed', data }))
        .listen('OrderShipped', (data) => w.log.push({ what: 'OrderShipped', data }));
    });
    await waitForLog(page, 'subscribed');
    const sdk = serverSdk(APP, nodes[0]!.port);
    // The first trigger may beat node 2's interest in the room to node 1's backplane: trigger until one arrives.
    await waitFor(
      async () => {
        if ((await entries(page, 'order-placed')).length > 0) return true;
        await sdk.trigger('orders', 'order-placed', { id: 0, probe: true });
        return false;
      },
      15_000,
      'a first order-placed',
      200,
    );
    await sdk.trigger('orders', 'order-placed', { id: 1 });
    await sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 2 });
    // Not Echo's names: neither listener gets these.
    await sdk.trigger('orders', 'OrderShipped', { id: 3 });
    await sdk.trigger('orders', 'App\\Events\\order-placed', { id: 4 });
    await sdk.trigger('orders', 'order-placed', { id: 5 });
    const placed = await waitForLog(page, 'order-placed', 3);
    expect(placed.filter((d) => (d as { probe?: boolean }).probe !== true)).toEqual([{ id: 1 }, { id: 5 }]);
    expect(await entries(page, 'OrderShipped')).toEqual([{ id: 2 }]);
  });

  it('Echo.private(): authorized through the auth endpoint; a whisper reaches the other page, not the sender; a refused user gets error()', async () => {
    const ann = (await openEcho(nodes[0]!, 'ann')).page;
    const ben = (await openEcho(nodes[1]!, 'ben')).page;
    for (const page of [ann, ben]) {
      await page.evaluate(() => {
        const w = globalThis as unknown as EchoWindow;
        w.echo
          .private('chat.1')
          .subscribed(() => w.log.push({ what: 'subscribed', data: null }))
          .listenForWhisper('typing', (data) => w.log.push({ what: 'typing', data }))
          .listen('.marker', (data) => w.log.push({ what: 'marker', data }));
      });
      await waitForLog(page, 'subscribed');
    }
    const socketOf = (page: Page): Promise<string> => page.evaluate(() => (globalThis as unknown as EchoWindow).echo.socketId());
    for (const [page, user] of [
      [ann, 'ann'],
      [ben, 'ben'],
    ] as const) {
      expect(authRequests).toContainEqual({ user, socketId: await socketOf(page), channel: 'private-chat.1', status: 200 });
    }
    // Until ben's node has the room's interest from ann's node, a whisper may not cross: whisper until one does.
    let k = 0;
    await waitFor(
      async () => {
        if ((await entries(ben, 'typing')).length > 0) return true;
        await ann.evaluate((k) => (globalThis as unknown as EchoWindow).echo.private('chat.1').whisper('typing', { user: 'ann', k }), k++);
        return false;
      },
      15_000,
      'a whisper from ann at ben',
      300,
    );
    await ben.evaluate(() => (globalThis as unknown as EchoWindow).echo.private('chat.1').whisper('typing', { user: 'ben' }));
    await waitForLog(ann, 'typing');
    // A server event on the channel through node 1 after the whispers: by the time both pages have it, any echo
    // of a page's own whisper would have arrived.
    await serverSdk(APP, nodes[0]!.port).trigger('private-chat.1', 'marker', { n: 1 });
    await waitForLog(ann, 'marker');
    await waitForLog(ben, 'marker');
    expect(await entries(ann, 'typing')).toEqual([{ user: 'ben' }]);
    expect((await entries(ben, 'typing')).every((d) => (d as { user: string }).user === 'ann')).toBe(true);

    const mallory = (await openEcho(nodes[0]!, 'mallory')).page;
    await mallory.evaluate(() => {
      const w = globalThis as unknown as EchoWindow;
      w.echo
        .private('chat.1')
        .subscribed(() => w.log.push({ what: 'subscribed', data: null }))
        .error((err) => w.log.push({ what: 'error', data: err }));
    });
    const [err] = await waitForLog(mallory, 'error');
    expect(err).toMatchObject({ type: 'AuthError', status: 403 });
    expect(await entries(mallory, 'subscribed')).toEqual([]);
  });

  it('Echo.join(): here, joining and leaving across two nodes; one user’s tabs on both nodes are one joining and one leaving', async () => {
    const watchPresence = async (page: Page): Promise<void> =>
      page.evaluate(() => {
        const w = globalThis as unknown as EchoWindow;
        w.echo
          .join('room.1')
          .here((members) => w.log.push({ what: 'here', data: members }))
          .joining((m) => w.log.push({ what: 'joining', data: m }))
          .leaving((m) => w.log.push({ what: 'leaving', data: m }))
          .listen('.marker', (data) => w.log.push({ what: 'marker', data }));
      });
    const byId = (ms: unknown): unknown[] => [...(ms as { id: number }[])].sort((a, b) => a.id - b.id);
    const ann = (await openEcho(nodes[0]!, 'ann')).page;
    await watchPresence(ann);
    expect(await waitForLog(ann, 'here')).toEqual([[{ id: 1, name: 'Ann' }]]);

    const ben = await openEcho(nodes[1]!, 'ben');
    await watchPresence(ben.page);
    expect(byId((await waitForLog(ben.page, 'here'))[0])).toEqual([
      { id: 1, name: 'Ann' },
      { id: 2, name: 'Ben' },
    ]);
    expect(await waitForLog(ann, 'joining')).toEqual([{ id: 2, name: 'Ben' }]);

    // Ben's second tab, on the other node: the same list everywhere, no second joining.
    const benTab2 = await openEcho(nodes[0]!, 'ben');
    await watchPresence(benTab2.page);
    expect(byId((await waitForLog(benTab2.page, 'here'))[0])).toEqual([
      { id: 1, name: 'Ann' },
      { id: 2, name: 'Ben' },
    ]);
    const cy = await openEcho(nodes[1]!, 'cy');
    await watchPresence(cy.page);
    expect(byId((await waitForLog(cy.page, 'here'))[0])).toEqual([
      { id: 1, name: 'Ann' },
      { id: 2, name: 'Ben' },
      { id: 3, name: 'Cy' },
    ]);
    expect(await waitForLog(ann, 'joining', 2)).toEqual([
      { id: 2, name: 'Ben' },
      { id: 3, name: 'Cy' },
    ]);
    expect(await waitForLog(ben.page, 'joining')).toEqual([{ id: 3, name: 'Cy' }]);

    // Ben closes the tab on node 2: he still has one on node 1, so nobody sees him leave.
    await ben.context.close();
    const sdk1 = serverSdk(APP, nodes[0]!.port);
    const sdk2 = serverSdk(APP, nodes[1]!.port);
    await waitFor(
      async () =>
        ((await (await sdk1.get({ path: '/channels/presence-room.1', params: { info: 'subscription_count' } })).json()) as { subscription_count: number })
          .subscription_count === 3,
      10_000,
      'ben’s first tab gone',
      100,
    );
    await sdk2.trigger('presence-room.1', 'marker', { n: 1 });
    for (const page of [ann, cy.page]) await waitForLog(page, 'marker', 1);
    expect(await entries(ann, 'leaving')).toEqual([]);
    expect(await entries(cy.page, 'leaving')).toEqual([]);

    // And the other: one leaving, on both nodes.
    await benTab2.context.close();
    expect(await waitForLog(ann, 'leaving')).toEqual([{ id: 2, name: 'Ben' }]);
    expect(await waitForLog(cy.page, 'leaving')).toEqual([{ id: 2, name: 'Ben' }]);
    await sdk1.trigger('presence-room.1', 'marker', { n: 2 });
    await sdk2.trigger('presence-room.1', 'marker', { n: 3 });
    for (const page of [ann, cy.page]) await waitForLog(page, 'marker', 3);
    expect(await entries(ann, 'leaving')).toEqual([{ id: 2, name: 'Ben' }]);
    expect(await entries(cy.page, 'leaving')).toEqual([{ id: 2, name: 'Ben' }]);
    expect(await entries(ann, 'joining')).toHaveLength(2);
    const users = (await (await sdk2.get({ path: '/channels/presence-room.1/users' })).json()) as { users: { id: string }[] };
    expect(users.users.map((u) => u.id).sort()).toEqual(['1', '3']);
  });

  it('signin through the user-auth endpoint; the SDK’s sendToUser reaches the signed-in page', async () => {
    const { page } = await openEcho(nodes[1]!, 'cy');
    await page.evaluate(() => {
      const w = globalThis as unknown as EchoWindow;
      w.echo.connector.pusher.user.bind('notice', (data) => w.log.push({ what: 'notice', data }));
      w.echo.connector.signin();
    });
    await page.waitForFunction(() => (globalThis as unknown as EchoWindow).echo.connector.pusher.user.user_data?.id === 'cy', undefined, { timeout: 15_000 });
    const sdk = serverSdk(APP, nodes[0]!.port);
    // The user channel's subscribe may still be in flight: send until the page has one.
    let n = 0;
    await waitFor(
      async () => {
        if ((await entries(page, 'notice')).length > 0) return true;
        await sdk.sendToUser('cy', 'notice', { n: n++ });
        return false;
      },
      15_000,
      'a user event on the page',
      200,
    );
    expect((await entries(page, 'notice'))[0]).toMatchObject({ n: expect.any(Number) });
  });
});
