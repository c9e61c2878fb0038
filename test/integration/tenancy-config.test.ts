/**
 * Tenant isolation through a real node (rooms, presence, direct messages, HTTP history), and the CLI's
 * configuration sources (flags, env, config file), validation errors, and the redacted start-up print.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, tempDir, type NodeProcess } from '../helpers/node-process.js';
import { API_KEY, JWT_SECRET, token } from '../helpers/tokens.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const all = { join: ['*'], publish: ['*'] };

describe('tenant isolation', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNodeProcess({ dev: false, args: ['--jwt-secret', JWT_SECRET, '--api-key', API_KEY, '--presence-diff-ms', '50'] });
  });
  afterAll(async () => {
    await node.stop();
  });

  it('the same room name in two tenants shares nothing: messages, seqs, presence, history, direct messages', async () => {
    const a1 = await TestClient.connect(node.wsUrl, { token: await token('alice', { tenant: 'acme', rooms: all }) });
    const a2 = await TestClient.connect(node.wsUrl, { token: await token('bob', { tenant: 'acme', rooms: all }) });
    const g1 = await TestClient.connect(node.wsUrl, { token: await token('alice', { tenant: 'globex', rooms: all }) });
    for (const c of [a1, a2, g1]) await c.request({ type: 'join', room: 'general' });
    const ackA = await a1.request({ type: 'publish', room: 'general', data: 'acme-secret' });
    const ackG = await g1.request({ type: 'publish', room: 'general', data: 'globex-secret' });
    expect(ackA).toMatchObject({ seq: 1 });
    expect(ackG).toMatchObject({ seq: 1 }); // separate sequences
    await a2.waitForMessages('general', 1);
    await g1.waitForMessages('general', 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(a2.messages('general').map((m) => m.data)).toEqual(['acme-secret']);
    expect(g1.messages('general').map((m) => m.data)).toEqual(['globex-secret']);
    const pres = await g1.request({ type: 'presence', room: 'general' });
    expect((pres.members as { user: string }[]).map((m) => m.user)).toEqual(['alice']);
    const presA = await a1.request({ type: 'presence', room: 'general' });
    expect((presA.members as { user: string }[]).map((m) => m.user).sort()).toEqual(['alice', 'bob']);
    const hist = await g1.request({ type: 'history', room: 'general' });
    expect((hist.messages as Frame[]).map((m) => m.data)).toEqual(['globex-secret']);
    const auth = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    const httpHist = (await (await fetch(`${node.url}/api/rooms/general/history?tenant=acme`, { headers: auth })).json()) as { messages: Frame[] };
    expect(httpHist.messages.map((m) => m.data)).toEqual(['acme-secret']);
    // a direct message to user "alice" of tenant acme does not reach alice of globex
    const res = await fetch(`${node.url}/api/publish`, { method: 'POST', headers: auth, body: JSON.stringify({ tenant: 'acme', user: 'alice', data: 'dm' }) });
    expect(res.status).toBe(202);
    await a1.waitFor((f) => f.type === 'direct');
    await new Promise((r) => setTimeout(r, 150));
    expect(g1.frames.some((f) => f.type === 'direct')).toBe(false);
    // presence diffs stay in their tenant
    expect(g1.frames.filter((f) => f.type === 'presence.diff').flatMap((f) => (f.joined as { user: string }[]).map((j) => j.user))).not.toContain('bob');
    for (const c of [a1, a2, g1]) c.close();
  });
});

describe('configuration', () => {
  const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

  it('reads flags, env vars and a config file (flags > env > file) and prints the config with secrets redacted', async () => {
    const dir = tempDir();
    const file = join(dir, 'switchboard.json');
    writeFileSync(file, JSON.stringify({ pingIntervalMs: 7000, maxFrameBytes: 5000, connectTimeoutMs: 4000 }));
    const secret = 'super-secret-value-0123456789';
    const node = await startNodeProcess({
      dev: false,
      args: ['--config', file, '--jwt-secret', secret, '--max-frame-bytes', '6000'],
      env: { SWITCHBOARD_MAX_FRAME_BYTES: '9000', SWITCHBOARD_CONNECT_TIMEOUT_MS: '4500', DATABASE_URL: '' },
    });
    try {
      const c = await TestClient.connect(node.wsUrl, { token: await token('u', { rooms: all }, { secret }) });
      const connected = c.frames.find((f) => f.type === 'connected')!;
      expect(connected.pingIntervalMs).toBe(7000); // file
      expect(connected.maxFrameBytes).toBe(6000); // flag beats env beats file
      const printed = node.logs.find((l) => l.msg === 'configuration')!.config as Record<string, unknown>;
      expect(printed.connectTimeoutMs).toBe(4500); // env beats file
      expect(printed.jwtSecret).toBe('[redacted]');
      expect(JSON.stringify(node.logs)).not.toContain(secret);
      c.close();
    } finally {
      await node.stop();
    }
  });

  it('refuses an invalid configuration with exit code 2 and a clear message', () => {
    const run = (args: string[]): { status: number | null; stderr: string } => {
      const r = spawnSync(process.execPath, [CLI, 'start', '--port', '0', ...args], { encoding: 'utf8', timeout: 20_000 });
      return { status: r.status, stderr: r.stderr };
    };
    const noKey = run([]);
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/--jwt-secret, --jwt-public-key, --jwks-url or a connect hook/);
    const badPort = run(['--dev', '--port', '99999']);
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toMatch(/--port/);
    const workers = run(['--dev', '--workers', '2']);
    expect(workers.status).toBe(2);
    expect(workers.stderr).toMatch(/--workers needs a shared backplane/);
    const halfCluster = run(['--dev', '--nats', 'nats://127.0.0.1:4222']);
    expect(halfCluster.status).toBe(2);
    expect(halfCluster.stderr).toMatch(/cluster mode needs --redis/);
    const shortSecret = run(['--jwt-secret', 'short']);
    expect(shortSecret.status).toBe(2);
    expect(shortSecret.stderr).toMatch(/at least 16/);
  });
});
