/**
 * The token lifecycle on two cluster nodes (real nats-server, redis-server and PostgreSQL; JWT HS256): a `refresh`
 * frame carries a connection past its first token's expiry without a reconnect, and is refused for another user,
 * another tenant, a room the new token does not allow, or a token that is not valid (the connection keeps its
 * current token); `POST /api/revoke` on one node closes the matching connections on both with 4006 and both refuse
 * the revoked token at connect, by user (tokens issued before) and by token id; and the per-user connection limit.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { API_KEY, JWT_SECRET } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];

async function startNode(i: number, extra: string[] = []): Promise<NodeProcess> {
  const [nats, redis, pg] = servers as [TestServer, TestServer, TestServer];
  const n = await startNodeProcess({
    dev: false,
    args: [
      '--node-id',
      `tok-${i}`,
      '--nats',
      nats.url,
      '--redis',
      redis.url,
      '--database',
      pg.url,
      '--durable-log',
      'memory',
      '--jwt-secret',
      JWT_SECRET,
      '--api-key',
      API_KEY,
      ...extra,
    ],
  });
  return n;
}

beforeAll(async () => {
  servers.push(...(await Promise.all([startNatsServer(), startRedisServer(), startPostgres()])));
  // In this order: nodes[2] is the one with the per-user limit.
  nodes.push(...(await Promise.all([startNode(1), startNode(2), startNode(3, ['--max-connections-per-user', '2'])])));
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(servers.map((s) => s.dispose()));
});

interface Claims {
  sub: string;
  tenant?: string;
  join?: string[];
  /** Seconds from now. */
  expiresIn?: number;
  jti?: string;
  /** Issue time, seconds since the epoch (default now). */
  iat?: number;
}

function jwt(c: Claims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let t = new SignJWT({ rooms: { join: c.join ?? ['*'], publish: c.join ?? ['*'] }, ...(c.tenant !== undefined ? { tenant: c.tenant } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(c.sub)
    .setIssuedAt(c.iat ?? now);
  if (c.expiresIn !== undefined) t = t.setExpirationTime(now + c.expiresIn);
  if (c.jti !== undefined) t = t.setJti(c.jti);
  return t.sign(new TextEncoder().encode(JWT_SECRET));
}

async function open(n: NodeProcess, token: string): Promise<TestClient> {
  const c = await TestClient.connect(n.wsUrl, { token });
  clients.push(c);
  return c;
}

/** A connect that the node refuses: the error frame and the close. */
async function refused(n: NodeProcess, token: string): Promise<{ code: string; close: number }> {
  const c = await TestClient.open(n.wsUrl);
  clients.push(c);
  const reply = await c.request({ type: 'connect', token });
  expect(reply.type).toBe('error');
  return { code: reply.code as string, close: (await c.waitClosed(10_000)).code };
}

async function revoke(n: NodeProcess, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${n.url}/api/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

describe('token refresh', () => {
  it('a refresh carries the connection past its first token’s expiry, with the new expiry, without a reconnect', async () => {
    const first = await jwt({ sub: 'rita', expiresIn: 2 });
    const c = await open(nodes[0]!, first);
    const connected = c.frames.find((f) => f.type === 'connected')!;
    const firstExp = connected.expiresAt as number;
    expect(firstExp).toBeGreaterThan(Date.now());
    expect((await c.request({ type: 'join', room: 'r1' })).type).toBe('joined');
    const reply = await c.request({ type: 'refresh', token: await jwt({ sub: 'rita', expiresIn: 600 }) });
    expect(reply.type).toBe('refreshed');
    expect(reply.expiresAt as number).toBeGreaterThan(firstExp + 500_000);
    await waitFor(() => Date.now() > firstExp + 1_500, 5_000, 'the first token expired and a sweep passed');
    expect(c.closed).toBeNull();
    const ack = await c.request({ type: 'publish', room: 'r1', data: 'still here' });
    expect(ack.type).toBe('ack');
  });

  it('refuses another user’s, another tenant’s, a narrower or an invalid token, and keeps the connection', async () => {
    const c = await open(nodes[1]!, await jwt({ sub: 'sam', expiresIn: 600 }));
    expect((await c.request({ type: 'join', room: 'lobby' })).type).toBe('joined');
    const cases: [string, string][] = [
      [await jwt({ sub: 'other', expiresIn: 600 }), 'forbidden'],
      [await jwt({ sub: 'sam', tenant: 'acme', expiresIn: 600 }), 'forbidden'],
      [await jwt({ sub: 'sam', join: ['elsewhere'], expiresIn: 600 }), 'forbidden'],
      [(await jwt({ sub: 'sam', expiresIn: 600 })).slice(0, -3) + 'AAA', 'unauthorized'],
      [await jwt({ sub: 'sam', expiresIn: -10 }), 'token_expired'],
    ];
    for (const [token, code] of cases) {
      const reply = await c.request({ type: 'refresh', token });
      expect(reply.type, code).toBe('error');
      expect(reply.code).toBe(code);
    }
    expect(c.closed).toBeNull();
    expect((await c.request({ type: 'publish', room: 'lobby', data: 1 })).type).toBe('ack');
    const metrics = await (await fetch(`${nodes[1]!.url}/metrics`)).text();
    expect(metrics).toMatch(/^switchboard_token_refreshes_total\{[^}]*result="forbidden"[^}]*\} 3$/m);
  });
});

describe('revocation', () => {
  it('revoking a user closes their connections on every node (4006) and refuses their older tokens, not newer ones', async () => {
    const token = await jwt({ sub: 'mallory', expiresIn: 600 });
    const a = await open(nodes[0]!, token);
    const b = await open(nodes[1]!, token);
    const bystander = await open(nodes[1]!, await jwt({ sub: 'trent', expiresIn: 600 }));
    const res = await revoke(nodes[0]!, { user: 'mallory' });
    expect(res.status).toBe(200);
    const at = Date.now();
    const [ca, cb] = await Promise.all([a.waitClosed(5_000), b.waitClosed(5_000)]);
    console.log(`revocation: both connections closed ${Date.now() - at} ms after the API answered`);
    expect([ca.code, cb.code]).toEqual([4006, 4006]);
    expect(a.frames.some((f) => f.type === 'error' && f.code === 'token_revoked')).toBe(true);
    for (const n of nodes.slice(0, 2)) expect(await refused(n, token)).toEqual({ code: 'token_revoked', close: 4006 });
    // A token issued after the revocation (iat is in whole seconds: the next one) is accepted.
    const fresh = await open(nodes[1]!, await jwt({ sub: 'mallory', expiresIn: 600, iat: Math.floor(at / 1000) + 1 }));
    expect(fresh.closed).toBeNull();
    expect(bystander.closed).toBeNull();
  });

  it('revoking a token id closes only that token’s connections, on every node, until it expires', async () => {
    const revoked = await jwt({ sub: 'victor', expiresIn: 600, jti: 'tok-1' });
    const other = await jwt({ sub: 'victor', expiresIn: 600, jti: 'tok-2' });
    const a = await open(nodes[1]!, revoked);
    const keep = await open(nodes[0]!, other);
    const res = await revoke(nodes[0]!, { jti: 'tok-1', expiresAt: Date.now() + 600_000 });
    expect(res.status).toBe(200);
    expect((await a.waitClosed(5_000)).code).toBe(4006);
    expect(await refused(nodes[0]!, revoked)).toEqual({ code: 'token_revoked', close: 4006 });
    expect(keep.closed).toBeNull();
    // A refresh to a revoked token is refused too.
    const reply = await keep.request({ type: 'refresh', token: revoked });
    expect(reply.code).toBe('token_revoked');
  });

  it('bad revoke requests get a 4xx and change nothing', async () => {
    const auth = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const cases: [RequestInit, number][] = [
      [{ method: 'POST', headers: auth, body: JSON.stringify({}) }, 400],
      [{ method: 'POST', headers: auth, body: JSON.stringify({ user: 'a', jti: 'b' }) }, 400],
      [{ method: 'POST', headers: auth, body: JSON.stringify({ user: 'a', expiresAt: 1000 }) }, 400],
      [{ method: 'POST', headers: auth, body: JSON.stringify({ user: 'a', extra: 1 }) }, 400],
      [{ method: 'POST', headers: auth, body: '{' }, 400],
      [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'a' }) }, 401],
      [{ method: 'GET', headers: auth }, 405],
    ];
    for (const [init, status] of cases) expect((await fetch(`${nodes[0]!.url}/api/revoke`, init)).status, JSON.stringify(init.body)).toBe(status);
    const c = await open(nodes[0]!, await jwt({ sub: 'a', expiresIn: 600 }));
    expect(c.closed).toBeNull();
  });
});

describe('per-user connection limit', () => {
  it('a user past --max-connections-per-user, counting every node, is refused (too_many_connections, 4007) until one closes', async () => {
    const token = await jwt({ sub: 'uma', expiresIn: 600 });
    // One connection on a node without the limit counts on the node with it (limit 2).
    const elsewhere = await open(nodes[0]!, token);
    await open(nodes[2]!, token);
    expect(await refused(nodes[2]!, token)).toEqual({ code: 'too_many_connections', close: 4007 });
    // Another user is not affected.
    await open(nodes[2]!, await jwt({ sub: 'ursula', expiresIn: 600 }));
    elsewhere.ws.close();
    await elsewhere.waitClosed(5_000);
    await waitFor(
      async () => {
        const c = await TestClient.open(nodes[2]!.wsUrl);
        clients.push(c);
        const reply = await c.request({ type: 'connect', token });
        return reply.type === 'connected';
      },
      5_000,
      'a connection is accepted again once one closed',
    );
    expect(await refused(nodes[2]!, token)).toEqual({ code: 'too_many_connections', close: 4007 });
  });
});
