/**
 * Every kind of bad input gets a typed error frame or an HTTP 4xx with a clear message, fails alone
 * (the node keeps serving a healthy client throughout), and is counted in /metrics.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

let node: NodeProcess;
let healthy: TestClient;
let healthyPub: TestClient;
let published = 0;

async function connected(user = 'u1', claims?: Parameters<typeof token>[1]): Promise<TestClient> {
  return TestClient.connect(node.wsUrl, { token: await token(user, claims) });
}

async function errorCount(code: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_errors_total{') && l.includes(`code="${code}"`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** After each bad input: the healthy pair still exchanges a message. */
async function stillServing(): Promise<void> {
  published++;
  await healthyPub.request({ type: 'publish', room: 'ok', data: published });
  await healthy.waitForMessages('ok', published);
}

beforeAll(async () => {
  node = await startNodeProcess({
    dev: false,
    args: ['--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--max-frame-bytes', '1024', '--max-http-body-bytes', '2048'],
  });
  healthy = await connected('healthy');
  healthyPub = await connected('healthy-pub');
  await healthy.request({ type: 'join', room: 'ok' });
  await healthyPub.request({ type: 'join', room: 'ok' });
});

afterAll(async () => {
  healthy.close();
  healthyPub.close();
  await node.stop();
});

describe('bad frames', () => {
  it.each([
    ['malformed JSON', '{"type": "join", ', 'bad_json'],
    ['unknown frame type', JSON.stringify({ type: 'subscribe', id: 1 }), 'unknown_type'],
    ['missing type', JSON.stringify({ id: 1 }), 'unknown_type'],
    ['schema mismatch', JSON.stringify({ type: 'join', id: 1, room: 42 }), 'bad_frame'],
    ['publish without data', JSON.stringify({ type: 'publish', id: 1, room: 'ok' }), 'bad_frame'],
    ['data nested too deep', JSON.stringify({ type: 'publish', id: 1, room: 'ok', data: JSON.parse('['.repeat(200) + ']'.repeat(200)) }), 'bad_frame'],
    ['frame over the size limit', JSON.stringify({ type: 'publish', id: 1, room: 'ok', data: 'x'.repeat(2000) }), 'frame_too_large'],
  ])('%s → %s, connection stays open', async (_name, raw, code) => {
    const c = await connected();
    const before = await errorCount(code);
    c.sendRaw(raw);
    const err = await c.waitFor((f) => f.type === 'error');
    expect(err.code).toBe(code);
    expect(typeof err.message).toBe('string');
    expect((err.message as string).length).toBeGreaterThan(5);
    // the same connection still works
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await errorCount(code)).toBe(before + 1);
    await stillServing();
    c.close();
  });

  it('binary frames get bad_frame', async () => {
    const c = await connected();
    c.sendRaw(Buffer.from([1, 2, 3]), true);
    expect(await c.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' });
    c.close();
  });

  it('a frame over the hard limit (4x) is closed with 1009 by the WebSocket layer', async () => {
    const c = await connected();
    c.sendRaw('x'.repeat(5000));
    expect((await c.waitClosed()).code).toBe(1009);
    await stillServing();
  });

  it('frames before connect get not_connected', async () => {
    const c = await TestClient.open(node.wsUrl);
    expect(await c.request({ type: 'join', room: 'ok' })).toMatchObject({ type: 'error', code: 'not_connected' });
    c.close();
  });

  it('invalid room names get bad_room', async () => {
    const c = await connected();
    for (const room of ['', 'has space', 'percent%not.allowed', 'x'.repeat(165), 'a/b', 'star*', 'gt>']) {
      expect(await c.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'bad_room' });
    }
    await stillServing();
    c.close();
  });

  it('rooms outside the token claims are forbidden (join and publish separately)', async () => {
    const c = await connected('limited', { rooms: { join: ['team-*', 'readonly'], publish: ['team-*'] } });
    expect(await c.request({ type: 'join', room: 'secret' })).toMatchObject({ code: 'forbidden' });
    expect(await c.request({ type: 'join', room: 'team-a' })).toMatchObject({ type: 'joined' });
    expect(await c.request({ type: 'join', room: 'readonly' })).toMatchObject({ type: 'joined' });
    expect(await c.request({ type: 'publish', room: 'readonly', data: 1 })).toMatchObject({ code: 'forbidden' });
    expect(await c.request({ type: 'publish', room: 'team-a', data: 1 })).toMatchObject({ type: 'ack', seq: 1 });
    expect(await c.request({ type: 'history', room: 'secret' })).toMatchObject({ code: 'forbidden' });
    expect(await c.request({ type: 'presence', room: 'secret' })).toMatchObject({ code: 'forbidden' });
    c.close();
  });

  it('a token without rooms claims may join nothing', async () => {
    const c = await connected('nobody', {});
    expect(await c.request({ type: 'join', room: 'ok' })).toMatchObject({ code: 'forbidden' });
    c.close();
  });

  it('bad history requests get bad_request', async () => {
    const c = await connected();
    expect(await c.request({ type: 'history', room: 'ok', limit: 0 })).toMatchObject({ code: 'bad_request' });
    expect(await c.request({ type: 'history', room: 'ok', limit: 5000 })).toMatchObject({ code: 'bad_request' });
    expect(await c.request({ type: 'history', room: 'ok', before: 5, after: 1 })).toMatchObject({ code: 'bad_request' });
    expect(await c.request({ type: 'history', room: 'ok', before: -1 })).toMatchObject({ code: 'bad_frame' });
    c.close();
  });
});

describe('bad tokens', () => {
  it.each([
    ['no token', undefined],
    ['garbage', 'not-a-jwt'],
  ])('%s → unauthorized and close 4500', async (_n, tok) => {
    const c = await TestClient.open(node.wsUrl);
    const err = await c.request({ type: 'connect', ...(tok !== undefined ? { token: tok } : {}) });
    expect(err).toMatchObject({ type: 'error', code: 'unauthorized' });
    expect((await c.waitClosed()).code).toBe(4500);
    await stillServing();
  });

  it('wrong signature → unauthorized', async () => {
    const c = await TestClient.open(node.wsUrl);
    const err = await c.request({ type: 'connect', token: await token('x', {}, { secret: 'another-secret-0123456789-abc' }) });
    expect(err).toMatchObject({ code: 'unauthorized' });
    expect((await c.waitClosed()).code).toBe(4500);
  });

  it('expired token → token_expired and close 4005 (reconnect with a fresh token)', async () => {
    const c = await TestClient.open(node.wsUrl);
    const err = await c.request({ type: 'connect', token: await token('x', {}, { expiresIn: Math.floor(Date.now() / 1000) - 10 }) });
    expect(err).toMatchObject({ code: 'token_expired', retryable: true });
    expect((await c.waitClosed()).code).toBe(4005);
  });

  it('a token that expires on an open connection closes it with 4005', async () => {
    // 4-5 s of validity left: enough for a slow connect to succeed before the token expires.
    const c = await TestClient.connect(node.wsUrl, { token: await token('short', undefined, { expiresIn: Math.floor(Date.now() / 1000) + 5 }) });
    expect((await c.waitClosed(15_000)).code).toBe(4005);
  });
});

describe('bad HTTP requests', () => {
  const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${node.url}/api/publish`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers }, body });

  it.each([
    [
      'missing API key',
      () => fetch(`${node.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      401,
      'unauthorized',
    ],
    ['wrong API key', () => post('{"room":"ok","data":1}', { authorization: 'Bearer wrong-key-0123456789' }), 401, 'unauthorized'],
    ['malformed JSON', () => post('{"room": '), 400, 'bad_json'],
    ['wrong content type', () => post('room=ok', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'bad_request'],
    ['oversize body', () => post(JSON.stringify({ room: 'ok', data: 'x'.repeat(5000) })), 413, 'frame_too_large'],
    ['room and user both', () => post('{"room":"ok","user":"u","data":1}'), 400, 'bad_request'],
    ['neither room nor user', () => post('{"data":1}'), 400, 'bad_request'],
    ['bad room name', () => post('{"room":"a b","data":1}'), 400, 'bad_room'],
    ['unknown field', () => post('{"room":"ok","data":1,"extra":true}'), 400, 'bad_request'],
    ['data nested too deep', () => post(`{"room":"ok","data":${'['.repeat(300)}${']'.repeat(300)}}`), 400, 'bad_request'],
    ['wrong method', () => fetch(`${node.url}/api/publish`, { headers: { authorization: `Bearer ${API_KEY}` } }), 405, 'bad_request'],
    ['history: bad seq', () => fetch(`${node.url}/api/rooms/ok/history?before=abc`, { headers: { authorization: `Bearer ${API_KEY}` } }), 400, 'bad_request'],
    [
      'history: limit out of range',
      () => fetch(`${node.url}/api/rooms/ok/history?limit=100000`, { headers: { authorization: `Bearer ${API_KEY}` } }),
      400,
      'bad_request',
    ],
    ['history: bad room', () => fetch(`${node.url}/api/rooms/a%20b/history`, { headers: { authorization: `Bearer ${API_KEY}` } }), 400, 'bad_room'],
    ['unknown route', () => fetch(`${node.url}/api/nothing`, { headers: { authorization: `Bearer ${API_KEY}` } }), 404, 'bad_request'],
  ])('%s → %i %s', async (_name, call, status, code) => {
    const before = await errorCount(code);
    const res = await call();
    expect(res.status).toBe(status);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(5);
    expect(await errorCount(code)).toBe(before + 1);
    await stillServing();
  });

  it('a valid API publish works', async () => {
    const res = await post(JSON.stringify({ room: 'ok', data: 'from-api' }));
    expect(res.status).toBe(200);
    published++;
    await healthy.waitForMessages('ok', published);
  });

  it('WebSocket upgrades on other paths get 404', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${node.port}/nope`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('should not open')));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(404);
  });
});

describe('abuse does not hurt other members', () => {
  it('a client that joins while being closed for bad frames does not drop the room for others', async () => {
    const victim = await connected('victim');
    await victim.request({ type: 'join', room: 'shared' });
    for (let round = 0; round < 3; round++) {
      const attacker = await connected('attacker');
      for (let i = 0; i < 100; i++) attacker.sendRaw('nonsense');
      attacker.send({ type: 'join', id: 999, room: 'shared' });
      expect((await attacker.waitClosed()).code).toBe(4501);
    }
    const res = await fetch(`${node.url}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ room: 'shared', data: 'still here' }),
    });
    expect(res.status).toBe(200);
    const [m] = await victim.waitForMessages('shared', 1);
    expect(m!.data).toBe('still here');
    victim.close();
  });

  it('more than 256 requests in flight on one connection get rate_limited; the connection keeps working', async () => {
    const c = await connected('pipeliner');
    await c.request({ type: 'join', room: 'ok' });
    for (let i = 0; i < 600; i++) c.send({ type: 'history', id: `h${i}`, room: 'ok', after: 0, limit: 1 }); // from the store (newest pages come from the window)
    await c.waitFor((f) => f.type === 'error' && f.code === 'rate_limited');
    const limited = c.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.retryable).toBe(true);
    // Every request is answered, refused or not; once all 600 have their reply nothing is in flight, so a new
    // request must be served (sent earlier, it could rightly be refused while 256 are still being answered).
    const answered = (): number => new Set(c.frames.filter((f) => typeof f.id === 'string' && f.id.startsWith('h')).map((f) => f.id)).size;
    await waitFor(() => answered() === 600, 30_000, 'a reply to each of the 600 requests');
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    await stillServing();
    c.close();
  });
});
