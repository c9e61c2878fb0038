/**
 * /readyz reports every engine a publish or a connect needs. A cluster node on throwaway NATS, Redis and
 * PostgreSQL: with redis-server stopped the node is not ready (the Redis checks named, with the detail);
 * restarted, it is ready again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';

interface Ready {
  status: number;
  body: { status: string; checks: Record<string, { ok: boolean; detail?: string }> };
}

const servers: TestServer[] = [];
let redis: TestServer;
let node: NodeProcess;

async function readyz(): Promise<Ready> {
  const res = await fetch(`${node.url}/readyz`);
  return { status: res.status, body: (await res.json()) as Ready['body'] };
}

beforeAll(async () => {
  const nats = await startNatsServer();
  servers.push(nats);
  redis = await startRedisServer();
  servers.push(redis);
  const pg = await startPostgres();
  servers.push(pg);
  node = await startNodeProcess({
    args: ['--nats', nats.url, '--redis', redis.url, '--database', pg.url, '--durable-log', 'memory'],
    startTimeoutMs: 100_000,
  });
}, 180_000);

afterAll(async () => {
  await node?.kill();
  for (const s of servers) await s.dispose();
});

describe('/readyz and Redis', () => {
  it('is 503 naming the RoomLog and presence checks while redis-server is down, and ready again after it is back', async () => {
    await waitFor(async () => (await readyz()).status === 200, 20_000, 'ready at start');
    const up = await readyz();
    expect(up.body.checks).toMatchObject({ roomLog: { ok: true }, presence: { ok: true } });

    await redis.stop();
    await waitFor(async () => (await readyz()).status === 503, 20_000, '503 while Redis is down');
    const down = await readyz();
    expect(down.body.status).toBe('not ready');
    expect(down.body.checks.roomLog).toMatchObject({ ok: false, detail: expect.stringMatching(/^redis /) });
    expect(down.body.checks.presence).toMatchObject({ ok: false, detail: expect.stringMatching(/^redis /) });
    // the other engines are fine: Redis is what makes the node unready
    expect(down.body.checks.backplane).toMatchObject({ ok: true });
    expect(down.body.checks.accepting).toMatchObject({ ok: true });

    await redis.restart();
    await waitFor(async () => (await readyz()).status === 200, 30_000, 'ready again after Redis is back');
    expect((await readyz()).body.checks).toMatchObject({ roomLog: { ok: true }, presence: { ok: true } });
  }, 90_000);
});
