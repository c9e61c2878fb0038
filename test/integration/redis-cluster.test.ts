/**
 * A cluster node on a real 3-master Redis Cluster (`--redis redis+cluster://…`, `--backplane redis`): the
 * RoomLog, presence and the Redis backplane all through Cluster clients. Members in 30 rooms of one tenant
 * get every message once and in order, the rooms' keys land on every shard, presence and history answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startRedisCluster, type RedisClusterSet } from '../helpers/redis-cluster.js';
import { startNatsServer, startPostgres, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

let cluster: RedisClusterSet;
const servers: TestServer[] = [];
let node: NodeProcess;
const clients: TestClient[] = [];

beforeAll(async () => {
  const [c, nats, pg] = await Promise.all([startRedisCluster(3), startNatsServer({ jetstream: true }), startPostgres()]);
  cluster = c;
  servers.push(nats, pg);
  node = await startNodeProcess({
    args: ['--nats', nats.url, '--backplane', 'redis', '--redis', cluster.url, '--database', pg.url, '--node-id', 'redis-cluster-node'],
  });
});

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await node?.stop();
  await Promise.all([...servers.map((s) => s.dispose()), cluster?.dispose()]);
});

describe('a cluster node on a 3-master Redis Cluster', () => {
  it('sequences, delivers, keeps presence and history for rooms spread over every shard', async () => {
    const rooms = Array.from({ length: 30 }, (_, i) => `shard-room-${i}`);
    const alice = await TestClient.connect(node.wsUrl, { user: 'alice' });
    clients.push(alice);
    for (const room of rooms) expect((await alice.request({ type: 'join', room })).type).toBe('joined');

    for (let i = 1; i <= 3; i++)
      for (const room of rooms) {
        const res = await fetch(`${node.url}/api/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ room, data: { i }, idem: `${room}-${i}` }),
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { seq: number }).seq).toBe(i);
      }
    const got = (room: string): unknown[] => alice.frames.filter((f) => f.type === 'message' && f.room === room).map((f) => f.seq);
    await waitFor(() => rooms.every((room) => got(room).length >= 3), 20_000, 'alice has 3 messages in every room');
    for (const room of rooms) expect(got(room)).toEqual([1, 2, 3]);

    const perMaster = await cluster.keysPerMaster();
    expect(
      perMaster.every((n) => n > 0),
      `keys per master: ${perMaster.join(', ')}`,
    ).toBe(true);

    for (const room of [rooms[0]!, rooms[29]!]) {
      const presence = (await (await fetch(`${node.url}/api/rooms/${room}/presence`)).json()) as { members: { user: string; online: boolean }[] };
      expect(presence.members).toEqual([expect.objectContaining({ user: 'alice', online: true })]);
      await waitFor(
        async () => {
          const res = await fetch(`${node.url}/api/rooms/${room}/history?after=0`);
          const body = (await res.json()) as { messages?: { seq: number }[] };
          return JSON.stringify(body.messages?.map((m) => m.seq)) === '[1,2,3]';
        },
        20_000,
        `history of ${room}`,
        100,
      );
    }
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
  });
});
