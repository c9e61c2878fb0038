/** The test launcher itself: real servers on free ports, killed and restarted on the same port. */
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startNatsServer, startRedisServer, type TestServer } from '../helpers/servers.js';

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.dispose();
});

function redisPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      resolve(d.toString().trim());
      s.destroy();
    });
    s.once('error', reject);
  });
}

function natsInfo(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('test servers', () => {
  it('starts, kills and restarts redis-server on the same port', async () => {
    const r = await startRedisServer();
    servers.push(r);
    expect(await redisPing(r.port)).toBe('+PONG');
    await r.kill();
    await expect(redisPing(r.port)).rejects.toThrow();
    await r.restart();
    expect(await redisPing(r.port)).toBe('+PONG');
  });

  it('starts nats-server with JetStream and restarts it', async () => {
    const n = await startNatsServer({ jetstream: true });
    servers.push(n);
    expect(await natsInfo(n.port)).toMatch(/"jetstream":true/);
    await n.stop();
    await n.restart();
    expect(await natsInfo(n.port)).toMatch(/^INFO /);
  });
});
