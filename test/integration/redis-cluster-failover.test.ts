/**
 * A Redis Cluster failover under a cluster node: 3 masters with a replica each (real redis-server processes,
 * `cluster-node-timeout` 2 s), one node with `--redis redis+cluster://…` and `--backplane redis`, a member in
 * 12 rooms spread over the shards. A master's replica confirms the first round of writes (WAIT), then loses its
 * link, so the second round never reaches it; the master is killed with -9 and the lagging replica promoted;
 * publishes to every room go on, each retried with its idem until acked. Then: every publish acked once, at
 * seqs no other message of its room has, in publish order; the member has every message once and in order
 * (the backplane is at-most-once: a message lost with the subscriber's shard is repaired from the recovery
 * window when the room's next message arrives, so a last round follows the storm); history has them all;
 * presence lists the member again and a new one. How long the dead shard's rooms were refused is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startRedisCluster, type RedisClusterSet } from '../helpers/redis-cluster.js';
import { detachReplica } from '../helpers/redis-sentinel.js';
import { startNatsServer, startPostgres, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

let cluster: RedisClusterSet;
const servers: TestServer[] = [];
let node: NodeProcess;
const clients: TestClient[] = [];
const ROOMS = Array.from({ length: 12 }, (_, i) => `fo-room-${i}`);
const ROUNDS = 6;

beforeAll(async () => {
  const [c, nats, pg] = await Promise.all([startRedisCluster(3, 1), startNatsServer({ jetstream: true }), startPostgres()]);
  cluster = c;
  servers.push(nats, pg);
  node = await startNodeProcess({
    args: [
      '--nats',
      nats.url,
      '--backplane',
      'redis',
      '--redis',
      cluster.url,
      '--database',
      pg.url,
      '--node-id',
      'cluster-failover-node',
      '--publish-timeout-ms',
      '2000',
    ],
  });
});

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await node?.stop();
  await Promise.all([...servers.map((s) => s.dispose()), cluster?.dispose()]);
});

/** One HTTP publish: its seq, or null when refused or failed. */
async function publish(room: string, i: number): Promise<number | null> {
  try {
    const res = await fetch(`${node.url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room, data: { i }, idem: `${room}-${i}` }),
      signal: AbortSignal.timeout(5_000),
    });
    return res.status === 200 ? ((await res.json()) as { seq: number }).seq : null;
  } catch {
    return null;
  }
}

async function members(room: string): Promise<string[]> {
  try {
    const res = await fetch(`${node.url}/api/rooms/${room}/presence`, { signal: AbortSignal.timeout(2_000) });
    if (res.status !== 200) return [];
    return ((await res.json()) as { members: { user: string; online: boolean }[] }).members
      .filter((m) => m.online)
      .map((m) => m.user)
      .sort();
  } catch {
    return [];
  }
}

describe('a cluster node across a Redis Cluster failover', () => {
  it('acks every publish once at an unused seq, delivers each once in order, and presence comes back', async () => {
    const alice = await TestClient.connect(node.wsUrl, { user: 'alice' });
    clients.push(alice);
    for (const room of ROOMS) expect((await alice.request({ type: 'join', room })).type).toBe('joined');
    const seqs = new Map<string, number[]>(ROOMS.map((r) => [r, []]));
    for (const room of ROOMS) seqs.get(room)!.push((await publish(room, 1))!);

    const victim = cluster.masters[0]!;
    const before = await cluster.keysPerMaster();
    expect(before[0], 'the victim shard holds rooms').toBeGreaterThan(0);
    for (const m of cluster.masters) {
      const c = cluster.client(m.port);
      await c.connect();
      expect(await c.call('WAIT', '1', '5000')).toBe(1);
      c.disconnect();
    }
    // The victim's replica has round 1 (WAIT), then loses its link: round 2 is acked (Redis master + JetStream) but
    // never reaches it, so once promoted it starts each of its rooms one seq behind (docs/scaling.md §4).
    const v = cluster.client(victim.port);
    await v.connect();
    const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(await v.info('replication'))?.[1]);
    const victimRooms = (await Promise.all(ROOMS.map((room) => v.exists(`sb:{default/${room}}:meta`).catch(() => 0)))).filter((n) => n === 1).length;
    v.disconnect();
    expect(victimRooms).toBeGreaterThan(0);
    const replica = cluster.client(replicaPort);
    await replica.connect();
    await detachReplica(replica);
    replica.disconnect();
    for (const room of ROOMS) seqs.get(room)!.push((await publish(room, 2))!);

    const killedAt = Date.now();
    await victim.kill();
    let refused = 0;
    let lastRefusal = killedAt;
    // Rounds 3..ROUNDS across the failover, then a last round once every shard answers again.
    for (let i = 3; i <= ROUNDS; i++)
      for (const room of ROOMS)
        for (;;) {
          const seq = await publish(room, i);
          if (seq !== null) {
            seqs.get(room)!.push(seq);
            break;
          }
          refused++;
          lastRefusal = Date.now();
          expect(Date.now() - killedAt, `${room} #${i} still refused`).toBeLessThan(60_000);
          await new Promise((r) => setTimeout(r, 100)); // pacing between retries of one refused publish, not a wait for a condition
        }
    const masters = await cluster.masterPorts();
    expect(masters).not.toContain(victim.port);
    expect(masters).toHaveLength(3);
    console.log(
      `redis cluster failover: publishes to the dead shard's rooms refused for ${refused > 0 ? lastRefusal - killedAt : 0} ms after the kill (${refused} refused attempts, retried with the same idem)`,
    );
    let last = ROUNDS + 1;
    for (const room of ROOMS) seqs.get(room)!.push((await publish(room, last))!);
    const got = (room: string): unknown[] => alice.frames.filter((f) => f.type === 'message' && f.room === room).map((f) => (f.data as { i: number }).i);
    // Redis pub/sub can drop a message published while the node's subscription moves off the dead shard (docs/
    // scaling.md §4); members get it by gap repair when the room's next message arrives. So while a room's member
    // lacks messages, every room gets one more (at most 10 rounds): each acked message must then arrive, once, in order.
    for (;;) {
      try {
        await waitFor(() => ROOMS.every((room) => got(room).length >= last), 5_000, 'alice has every message of every room');
        break;
      } catch (err) {
        if (last >= ROUNDS + 11) throw err;
        last++;
        for (const room of ROOMS) seqs.get(room)!.push((await publish(room, last))!);
      }
    }
    for (const room of ROOMS) expect(seqs.get(room), room).toEqual(Array.from({ length: last }, (_, k) => k + 1));
    // The node found each of the dead shard's rooms behind JetStream on the promoted replica and moved past it, once each.
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^switchboard_sequence_fences_total(\\{[^}]*\\})? ${victimRooms}$`, 'm'));
    for (const room of ROOMS) expect(got(room), room).toEqual(Array.from({ length: last }, (_, k) => k + 1));

    for (const room of [ROOMS[0]!, ROOMS[11]!])
      await waitFor(
        async () => {
          const res = await fetch(`${node.url}/api/rooms/${room}/history?after=0`);
          const body = (await res.json()) as { messages?: { seq: number }[] };
          return body.messages?.length === last;
        },
        20_000,
        `history of ${room}`,
        100,
      );

    const bob = await TestClient.connect(node.wsUrl, { user: 'bob' });
    clients.push(bob);
    for (const room of ROOMS) expect((await bob.request({ type: 'join', room })).type).toBe('joined');
    for (const room of ROOMS) await waitFor(async () => JSON.stringify(await members(room)) === '["alice","bob"]', 30_000, `alice and bob in ${room}`, 100);
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);
  });
});
