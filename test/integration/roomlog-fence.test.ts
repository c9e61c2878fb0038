/**
 * The Redis RoomLog's fence (roomlog.ts `FenceSource`, roomlog/fence.ts) against a real redis-server: a room's
 * Redis state is rolled back to what a replica that stopped replicating after seq 6 would hold (DUMP after the
 * 6th append, RESTORE after the 10th), while the "durable log" (the test's map of every appended message, what
 * JetStream holds in a cluster) has 1..10. The next append must not reuse 7..10: after a reconnect, after the
 * fence's TTL, and after the durable log refused a reused seq (`refused`). Idempotency ids and the recent window
 * of the lost messages come back. The whole failover with real Sentinel and Cluster servers is in
 * redis-sentinel.test.ts and redis-cluster-failover.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRedis, type RedisClient } from '../../src/connections/redis.js';
import { openRedisRoomLog, type RedisRoomLog } from '../../src/engines/roomlog/redis.js';
import type { FenceSource } from '../../src/engines/roomlog/roomlog.js';
import type { RoomMessage, RoomRef } from '../../src/engines/types.js';
import { startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';

let server: TestServer;
let admin: RedisClient;
let prefixes = 0;

beforeAll(async () => {
  server = await startRedisServer();
  admin = await openRedis({ url: server.url }, 'test admin');
});

afterAll(async () => {
  admin?.disconnect();
  await server?.dispose();
});

interface Harness {
  log: RedisRoomLog;
  durable: Map<number, RoomMessage>;
  moved: { from: number; to: number; restored: number }[];
  /** How many times the fence read the durable log's newest message. */
  floors(): number;
  ref: RoomRef;
  /** Appends `data` with idem `m-<data>` and records it as durable (what the publisher does once JetStream acked). */
  publish(i: number): Promise<RoomMessage>;
  /** Rolls the room's Redis keys back to their state after the `after`-th append (taken by `snapshot`). */
  rollBack(): Promise<void>;
  snapshot(): Promise<void>;
  close(): Promise<void>;
}

async function harness(ttlMs?: number): Promise<Harness> {
  prefixes++;
  const keyPrefix = `f${prefixes}:`;
  const ref = { tenant: 't', room: 'r.1' };
  const durable = new Map<number, RoomMessage>();
  const moved: Harness['moved'] = [];
  let floors = 0;
  const fence: FenceSource = {
    floor: async (r) => {
      floors++;
      const seqs = [...durable.keys()];
      return r.room === ref.room && seqs.length > 0 ? durable.get(Math.max(...seqs))! : null;
    },
    range: async (_r, from, to) => [...durable.values()].filter((m) => m.seq >= from && m.seq <= to).sort((a, b) => a.seq - b.seq),
    onMoved: (_r, from, to, restored) => moved.push({ from, to, restored }),
    ...(ttlMs === undefined ? {} : { ttlMs }),
  };
  const log = await openRedisRoomLog({ url: server.url, keyPrefix }, { windowSize: 100, fence });
  const base = `${keyPrefix}{${ref.tenant}/${ref.room}}`;
  const keys = ['meta', 'win', 'idem', 'idemq'].map((k) => `${base}:${k}`);
  let dumps: (Buffer | null)[] = [];
  return {
    log,
    durable,
    moved,
    floors: () => floors,
    ref,
    async publish(i) {
      const { message, duplicate } = await log.append(ref, { from: 'u', data: i, idem: `m-${i}` });
      expect(duplicate).toBe(false);
      durable.set(message.seq, message);
      return message;
    },
    async snapshot() {
      dumps = await Promise.all(keys.map((k) => admin.dumpBuffer(k)));
    },
    async rollBack() {
      for (const [i, k] of keys.entries()) {
        const dump = dumps[i];
        if (dump === null || dump === undefined) await admin.del(k);
        else await admin.restore(k, 0, dump, 'REPLACE');
      }
    },
    close: () => log.close(),
  };
}

/** Publishes 1..10 and rolls Redis back to seq 6: the state a promoted replica that lagged by 4 writes has. */
async function lagBehind(h: Harness): Promise<void> {
  for (let i = 1; i <= 6; i++) await h.publish(i);
  await h.snapshot();
  for (let i = 7; i <= 10; i++) await h.publish(i);
  await h.rollBack();
  expect((await h.log.position(h.ref)).seq).toBe(6);
}

/** What must hold once the room was fenced: no seq reused, ids and window of 7..10 back. */
async function expectRecovered(h: Harness, next: RoomMessage): Promise<void> {
  expect(next.seq).toBe(11);
  const retried = await h.log.append(h.ref, { from: 'u', data: 8, idem: 'm-8' });
  expect(retried.duplicate).toBe(true);
  expect(retried.message).toEqual(h.durable.get(8));
  const epoch = h.durable.get(1)!.epoch;
  const recovered = await h.log.since(h.ref, 6, epoch);
  expect(recovered.complete).toBe(true);
  expect(recovered.messages.map((m) => m.seq)).toEqual([7, 8, 9, 10, 11]);
  expect(recovered.messages.slice(0, 4)).toEqual([7, 8, 9, 10].map((s) => h.durable.get(s)));
}

describe('the Redis RoomLog fences a room against the durable log', () => {
  it('after a reconnect: the first append moves the seq past the durable log, restoring ids and window', async () => {
    const h = await harness();
    await lagBehind(h);
    // The client reconnects (as it does when Sentinel or a Cluster moves it to a promoted replica).
    const ids = async (): Promise<string[]> =>
      [...((await admin.call('CLIENT', 'LIST', 'TYPE', 'normal')) as string).matchAll(/^id=(\d+)/gm)].map((m) => m[1]!);
    const me = String(await admin.client('ID'));
    const before = new Set(await ids());
    await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    // Ready again on a new connection (a new client id at the server, and the client's status back to ready).
    await waitFor(async () => (await ids()).some((id) => id !== me && !before.has(id)) && h.log.health().ok, 10_000, 'room log reconnected');
    const next = await h.publish(11);
    expect(h.moved).toEqual([{ from: 6, to: 10, restored: 4 }]);
    await expectRecovered(h, next);
    await h.close();
  });

  it('without a reconnect, after the fence TTL (here 0: every append checks)', async () => {
    const h = await harness(0);
    await lagBehind(h);
    const next = await h.publish(11);
    expect(h.moved).toEqual([{ from: 6, to: 10, restored: 4 }]);
    await expectRecovered(h, next);
    await h.close();
  });

  it('a reused seq refused by the durable log: the refused message is forgotten, the room fenced, the lost ids restored', async () => {
    const h = await harness();
    await lagBehind(h);
    // No reconnect reported and the TTL not passed: the append reuses seq 7, which the durable log refuses.
    const reused = await h.log.append(h.ref, { from: 'v', data: 'x', idem: 'x-1' });
    expect(reused.message.seq).toBe(7);
    expect(h.durable.get(7)?.data).toBe(7);
    await h.log.refused(reused.message);
    // Its retry is sequenced anew, past everything durable; the message that holds 7 keeps its id.
    const retry = await h.log.append(h.ref, { from: 'v', data: 'x', idem: 'x-1' });
    expect(retry.duplicate).toBe(false);
    expect(retry.message.seq).toBe(11);
    expect(h.moved).toEqual([{ from: 7, to: 10, restored: 3 }]);
    const original = await h.log.append(h.ref, { from: 'u', data: 7, idem: 'm-7' });
    expect(original.duplicate).toBe(true);
    expect(original.message).toEqual(h.durable.get(7));
    await h.close();
  });

  it('a room whose seq is not behind is left as is, and checked once per TTL, not per append', async () => {
    const h = await harness();
    for (let i = 1; i <= 20; i++) await h.publish(i);
    expect(h.floors()).toBe(1);
    expect(h.moved).toEqual([]);
    expect((await h.log.position(h.ref)).seq).toBe(20);
    await h.close();
  });
});
