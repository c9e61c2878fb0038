/**
 * The SDK across a gateway crash in a cluster: subscribers on node A, a publisher on node B that keeps
 * publishing (HTTP, with idempotency ids) while A is killed with SIGKILL and restarted on the same port.
 * Every acked message reaches every subscriber exactly once, in seq order, with no reset; history holds
 * each publish once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '../../src/client/index.js';
import { freePort } from '../helpers/free-port.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { historyHttp, publishHttp, sdk, type Recorded } from './real-helpers.js';

const servers: TestServer[] = [];
const procs: NodeProcess[] = [];
const recorded: Recorded[] = [];
let clusterArgs: string[];

async function clusterNode(port: number, id: string): Promise<NodeProcess> {
  const n = await startNodeProcess({ port, args: ['--node-id', id, ...clusterArgs] });
  procs.push(n);
  return n;
}

beforeAll(async () => {
  const nats = await startNatsServer({ jetstream: true });
  const redis = await startRedisServer();
  const pg = await startPostgres();
  servers.push(nats, redis, pg);
  clusterArgs = ['--nats', nats.url, '--redis', redis.url, '--database', pg.url];
}, 120_000);

afterAll(async () => {
  for (const r of recorded) r.client.close();
  for (const p of procs) await p.kill();
  for (const s of servers) await s.dispose();
});

describe('SDK in a cluster', () => {
  it("kill -9 the subscribers' node while a publisher keeps publishing through another node: every acked message once, in order", async () => {
    const portA = await freePort();
    const a = await clusterNode(portA, 'node-a');
    const b = await clusterNode(await freePort(), 'node-b');
    const room = 'crash-stream';
    const subs = [0, 1, 2].map((i) => sdk(a.wsUrl, room, { user: `sub${i}` }));
    recorded.push(...subs);
    await waitFor(() => subs.every((s) => s.client.state === 'connected'), 15_000, 'subscribers connected');
    // Connected is not joined: wait for every join reply before publishing, or the first acked messages
    // may precede a subscriber's join position and never reach it.
    await waitFor(() => subs.every((s) => s.client.room(room).joined), 15_000, 'subscribers joined');

    const acked = new Map<number, number>(); // publish number -> seq
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop; i++) {
        for (;;) {
          try {
            acked.set(i, (await publishHttp(b.url, room, { i }, `p-${i}`)).seq);
            break;
          } catch {
            if (stop) return;
            await sleep(50);
          }
        }
        await sleep(5);
      }
    })();

    await waitFor(() => acked.size >= 30, 20_000, 'acks before the kill');
    await a.kill();
    const duringFrom = acked.size;
    await waitFor(() => acked.size >= duringFrom + 30, 20_000, 'publishing continues through node B while A is down');
    await clusterNode(portA, 'node-a'); // same port: the subscribers reconnect to it
    const afterFrom = acked.size;
    await waitFor(() => acked.size >= afterFrom + 30, 20_000, 'acks after the restart');
    stop = true;
    await publisher;

    const seqsAcked = [...acked.values()].sort((x, y) => x - y);
    const last = seqsAcked[seqsAcked.length - 1]!;
    await waitFor(() => subs.every((s) => (s.messages.at(-1)?.seq ?? 0) >= last), 30_000, 'subscribers caught up');
    for (const s of subs) {
      const got = s.messages.map((m: Message) => m.seq);
      // strictly increasing by one: in order, each once, nothing skipped
      expect(got).toEqual(Array.from({ length: got.length }, (_, k) => got[0]! + k));
      for (const q of seqsAcked) expect(got).toContain(q);
      expect(s.resets).toEqual([]);
      expect(s.states.some((e) => e.to === 'reconnecting')).toBe(true);
    }
    const history = await historyHttp(b.url, room);
    const numbers = history.map((m) => (m.data as { i: number }).i);
    expect(new Set(numbers).size).toBe(numbers.length); // each publish stored once
    for (const i of acked.keys()) expect(numbers).toContain(i);
  }, 120_000);
});
