/**
 * The PresenceStore, RoomLog and Backplane conformance suites against the Redis implementations on a real
 * 3-master Redis Cluster (`redis+cluster://…`, test/helpers/redis-cluster.ts): N "nodes" = N instances with
 * their own Cluster clients, a fresh key prefix per test, FLUSHALL on every master after it. Plus what only a
 * cluster shows: the rooms of a tenant spread over every shard, each room's keys on one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnectOptions } from '../../src/connections/redis.js';
import { openRedisBackplane, type RedisBackplane } from '../../src/engines/backplane/redis.js';
import { openRedisPresence, type RedisPresenceStore } from '../../src/engines/presence/redis.js';
import { openRedisRoomLog, type RedisRoomLog } from '../../src/engines/roomlog/redis.js';
import { startRedisCluster, type RedisClusterSet } from '../helpers/redis-cluster.js';
import { backplaneConformance } from './backplane.suite.js';
import { presenceConformance, type PresenceFactory } from './presence.suite.js';
import { presenceSettleConformance } from './presence-settle.suite.js';
import { roomLogConformance } from './roomlog.suite.js';

let cluster: RedisClusterSet | undefined;
let harnesses = 0;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
});

afterAll(async () => {
  await cluster?.dispose();
});

/** Connection options with a key prefix of its own. */
function fresh(): RedisConnectOptions {
  harnesses += 1;
  return { url: cluster!.url, keyPrefix: `c${harnesses}:` };
}

const clusterPresence: PresenceFactory = async (options) => {
  const o = fresh();
  const opened: RedisPresenceStore[] = [];
  return {
    stores: async (n) => {
      for (let i = 0; i < n; i++) opened.push(await openRedisPresence(o, options));
      return opened.slice(-n);
    },
    cleanup: async () => {
      await Promise.all(opened.map((s) => s.close()));
      await cluster!.flush();
    },
  };
};
presenceConformance('redis cluster', clusterPresence);
presenceSettleConformance('redis cluster', clusterPresence);

roomLogConformance('redis cluster', async (options) => {
  const o = fresh();
  const opened: RedisRoomLog[] = [];
  return {
    logs: async (n) => {
      for (let i = 0; i < n; i++) opened.push(await openRedisRoomLog(o, options));
      return opened.slice(-n);
    },
    cleanup: async () => {
      await Promise.all(opened.map((l) => l.close()));
      await cluster!.flush();
    },
  };
});

// Pub/sub on a cluster: PUBLISH on any shard reaches subscribers on every shard. No outage case: stopping a
// master of a replica-less cluster takes its slots down, which is the cluster's failure, not the backplane's.
backplaneConformance('redis cluster', async () => {
  const o = fresh();
  const nodes: RedisBackplane[] = [];
  return {
    nodes: async (n) => {
      const created = await Promise.all(Array.from({ length: n }, () => openRedisBackplane({ ...o })));
      nodes.push(...created);
      return created;
    },
    cleanup: async () => {
      await Promise.allSettled(nodes.map((node) => node.close()));
    },
  };
});

describe('Redis engines on a 3-master Redis Cluster', () => {
  it("spreads a tenant's rooms over every shard, each room's keys on one, and serves them all", async () => {
    const o = fresh();
    const log = await openRedisRoomLog(o, {});
    const presence = await openRedisPresence(o, {});
    try {
      const rooms = Array.from({ length: 30 }, (_, i) => ({ tenant: 'acme', room: `room-${i}` }));
      const alice = { tenant: 'acme', user: 'alice', connId: 'n1-1', nodeId: 'n1' };
      await presence.connect(alice);
      for (const room of rooms) {
        for (let i = 0; i < 3; i++) expect((await log.append(room, { from: 'alice', data: i, idem: `k${i}` })).message.seq).toBe(i + 1);
        expect(await presence.join(room, alice)).toEqual({ changed: true });
      }
      const perMaster = await cluster!.keysPerMaster();
      expect(
        perMaster.every((n) => n > 0),
        `keys per master: ${perMaster.join(', ')}`,
      ).toBe(true);
      for (const room of rooms) {
        expect((await log.position(room)).seq).toBe(3);
        expect(await presence.members(room)).toEqual([expect.objectContaining({ user: 'alice', online: true })]);
      }
      expect(await presence.rooms('acme')).toEqual(rooms.map((r) => r.room).sort());
      await presence.heartbeat('n1', ['n1-1']);
      await presence.disconnect(alice);
      expect(await presence.members(rooms[0]!)).toEqual([expect.objectContaining({ user: 'alice', online: false })]);
    } finally {
      await Promise.all([log.close(), presence.close()]);
      await cluster!.flush();
    }
  });
});
