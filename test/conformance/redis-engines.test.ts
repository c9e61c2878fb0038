/**
 * The PresenceStore and RoomLog conformance suites against the Redis implementations, with N "nodes"
 * = N store instances (own connections) on one throwaway redis-server, a fresh key prefix per test and
 * FLUSHDB after it (RevocationStore too). Plus what only a shared server shows: concurrent appends from 3 instances, the key
 * layout, and a redis-server SIGKILL + restart (no persistence: the data is gone).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openRedis, type RedisClient, type RedisConnectOptions } from '../../src/connections/redis.js';
import { openRedisPresence, type RedisPresenceStore } from '../../src/engines/presence/redis.js';
import { openRedisRevocations, type RedisRevocationStore } from '../../src/engines/revocations/redis.js';
import { openRedisRoomLog, type RedisRoomLog } from '../../src/engines/roomlog/redis.js';
import type { RoomLogOptions } from '../../src/engines/roomlog/roomlog.js';
import { roomKey, type RoomPosition, type RoomRef } from '../../src/engines/types.js';
import { startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { presenceConformance, type PresenceFactory } from './presence.suite.js';
import { presenceSettleConformance } from './presence-settle.suite.js';
import { revocationConformance } from './revocations.suite.js';
import { roomLogConformance } from './roomlog.suite.js';

let server: TestServer | undefined;
let admin: RedisClient | undefined;
let harnesses = 0;

beforeAll(async () => {
  server = await startRedisServer();
  admin = await openRedis({ url: server.url }, 'test admin');
});

afterAll(async () => {
  admin?.disconnect();
  await server?.dispose();
});

/** Connection options with a key prefix of its own. */
function fresh(): RedisConnectOptions {
  harnesses += 1;
  return { url: server!.url, keyPrefix: `t${harnesses}:` };
}

const redisPresence: PresenceFactory = async (options) => {
  const o = fresh();
  const opened: RedisPresenceStore[] = [];
  return {
    stores: async (n) => {
      for (let i = 0; i < n; i++) opened.push(await openRedisPresence(o, options));
      return opened.slice(-n);
    },
    cleanup: async () => {
      await Promise.all(opened.map((s) => s.close()));
      await admin!.flushdb();
    },
  };
};
presenceConformance('redis', redisPresence);
presenceSettleConformance('redis', redisPresence);

roomLogConformance('redis', async (options) => {
  const o = fresh();
  const opened: RedisRoomLog[] = [];
  return {
    logs: async (n) => {
      for (let i = 0; i < n; i++) opened.push(await openRedisRoomLog(o, options));
      return opened.slice(-n);
    },
    cleanup: async () => {
      await Promise.all(opened.map((l) => l.close()));
      await admin!.flushdb();
    },
  };
});

revocationConformance('redis', async () => {
  const o = fresh();
  const opened: RedisRevocationStore[] = [];
  return {
    stores: async (n) => {
      for (let i = 0; i < n; i++) opened.push(await openRedisRevocations(o, { pollMs: 100 }));
      return opened.slice(-n);
    },
    cleanup: async () => {
      await Promise.all(opened.map((s) => s.close()));
      await admin!.flushdb();
    },
  };
});

describe('Redis engines on a shared redis-server', () => {
  const closers: { close(): Promise<void> }[] = [];
  const room: RoomRef = { tenant: 'acme', room: 'lobby' };
  const logs = async (n: number, o: RedisConnectOptions, options: Partial<RoomLogOptions> = {}): Promise<RedisRoomLog[]> => {
    const created: RedisRoomLog[] = [];
    for (let i = 0; i < n; i++) created.push(await openRedisRoomLog(o, options));
    closers.push(...created);
    return created;
  };
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c.close()));
    await waitFor(
      async () =>
        await admin!.flushdb().then(
          () => true,
          () => false,
        ),
      20_000,
      'flushdb',
    );
  });

  it('3 × 200 concurrent appends from 3 instances: seqs 1..600 once each, ts non-decreasing in seq order', async () => {
    const three = await logs(3, fresh());
    const results = await Promise.all(three.flatMap((log, n) => Array.from({ length: 200 }, (_, i) => log.append(room, { from: `u${n}`, data: { n, i } }))));
    const bySeq = results.map((r) => r.message).sort((a, b) => a.seq - b.seq);
    expect(bySeq.map((m) => m.seq)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(new Set(bySeq.map((m) => m.epoch)).size).toBe(1);
    for (let i = 1; i < bySeq.length; i++) expect(bySeq[i]!.ts).toBeGreaterThanOrEqual(bySeq[i - 1]!.ts);
    const all = await three[0]!.since(room, 0, bySeq[0]!.epoch);
    expect(all.complete).toBe(true);
    expect(all.messages).toEqual(bySeq);
  });

  it('keeps every key of a room under one hash tag; meta never expires, the window does', async () => {
    const o = fresh();
    const [log] = await logs(1, o);
    const presence = await openRedisPresence(o, {});
    closers.push(presence);
    await log!.append(room, { from: 'alice', data: 'x', idem: 'k' });
    const alice = { tenant: 'acme', user: 'alice', connId: 'n1-1', nodeId: 'n1' };
    await presence.connect(alice);
    await presence.join(room, alice);
    const keys = (await admin!.keys(`${o.keyPrefix}*`)).sort();
    const tags = keys.map((k) => /\{([^}]*)\}/.exec(k)?.[1]);
    expect(keys.length).toBeGreaterThanOrEqual(7);
    for (const k of keys) expect(k.split('{')).toHaveLength(2);
    // Room keys, the user's keys, the node registry, and the tenant's room index (presence `rooms`).
    expect(new Set(tags)).toEqual(new Set(['acme/lobby', 'acme/alice', 'n1', 'acme']));
    expect(await admin!.pttl(`${o.keyPrefix}{acme/lobby}:meta`)).toBe(-1);
    expect(await admin!.pttl(`${o.keyPrefix}{acme/lobby}:win`)).toBeGreaterThan(0);
    for (const k of keys.filter((key) => !key.endsWith(':meta'))) expect(await admin!.pttl(k)).toBeGreaterThan(0);
    // The node registry lists the rooms a connection is in, so disconnect and removeNode find them.
    for (const name of ['lobby-2', 'other', 'lobby-3']) await presence.join({ tenant: 'acme', room: name }, alice);
    for (const name of ['other', 'lobby', 'nowhere']) await presence.leave({ tenant: 'acme', room: name }, alice);
    const entry = await admin!.hget(`${o.keyPrefix}n:{n1}:conns`, alice.connId);
    expect(entry?.split('\u0000')).toEqual(['acme', 'alice', 'lobby-2', 'lobby-3']);
    await presence.disconnect(alice);
    expect(await admin!.hget(`${o.keyPrefix}n:{n1}:conns`, alice.connId)).toBeNull();
    for (const name of ['lobby-2', 'lobby-3', 'lobby']) {
      expect(await presence.members({ tenant: 'acme', room: name })).toEqual([expect.objectContaining({ user: 'alice', online: false })]);
    }
  });

  it('survives a redis-server SIGKILL and restart: errors while down, then a new epoch (or the seed) and working presence', async () => {
    const o = fresh();
    const history = new Map<string, RoomPosition>();
    const [plain] = await logs(1, o);
    const [seeded] = await logs(1, o, { seed: async (ref) => history.get(roomKey(ref)) ?? null });
    const kept: RoomRef = { tenant: 'acme', room: 'kept' };
    const presence = await openRedisPresence(o, {});
    closers.push(presence);
    const alice = { tenant: 'acme', user: 'alice', connId: 'n1-1', nodeId: 'n1' };
    await presence.connect(alice);
    expect(await presence.join(room, alice)).toEqual({ changed: true });

    for (let i = 0; i < 3; i++) await plain!.append(room, { from: 'u', data: i });
    let last: RoomPosition = { seq: 0, epoch: '' };
    for (let i = 0; i < 5; i++) {
      const { message } = await seeded!.append(kept, { from: 'u', data: i });
      last = { seq: message.seq, epoch: message.epoch };
      history.set(roomKey(kept), last); // what the history writer would have stored
    }
    const before = await plain!.position(room);
    expect(before.seq).toBe(3);
    expect(last.seq).toBe(5);

    await server!.kill();
    // All at once: the client fails queued commands after its bounded reconnect attempts.
    const down = await Promise.allSettled([
      plain!.append(room, { from: 'u', data: 'lost' }),
      seeded!.position(kept),
      presence.join(room, alice),
      presence.members(room),
      presence.heartbeat('n1', [alice.connId]),
    ]);
    expect(down.map((r) => r.status)).toEqual(Array(5).fill('rejected'));
    expect(plain!.health().ok).toBe(false);
    expect(presence.health().ok).toBe(false);

    await server!.restart();
    await waitFor(
      async () =>
        plain!.position(room).then(
          () => true,
          () => false,
        ),
      20_000,
      'room log back',
      50,
    );
    const after = await plain!.position(room);
    expect(after.seq).toBe(0);
    expect(after.epoch).not.toBe(before.epoch);
    const next = await plain!.append(room, { from: 'u', data: 'again' });
    expect(next.message).toMatchObject({ seq: 1, epoch: after.epoch });
    expect((await plain!.since(room, before.seq, before.epoch)).complete).toBe(false);

    await waitFor(
      async () =>
        seeded!.position(kept).then(
          () => true,
          () => false,
        ),
      20_000,
      'seeded log back',
      50,
    );
    expect(await seeded!.position(kept)).toEqual(last);
    expect((await seeded!.append(kept, { from: 'u', data: 'continued' })).message).toMatchObject({ seq: 6, epoch: last.epoch });

    await waitFor(
      async () =>
        presence.user('acme', 'alice').then(
          () => true,
          () => false,
        ),
      20_000,
      'presence back',
      50,
    );
    expect(await presence.user('acme', 'alice')).toEqual({ user: 'alice', online: false, lastSeen: 0, connections: 0 });
    expect(await presence.members(room)).toEqual([]);
    const bob = { tenant: 'acme', user: 'bob', connId: 'n1-2', nodeId: 'n1' };
    await presence.connect(bob);
    expect(await presence.join(room, bob)).toEqual({ changed: true });
    // alice's connection is still alive on its node: the node's next heartbeat registers it again.
    await presence.heartbeat('n1', [alice.connId, bob.connId]);
    expect((await presence.user('acme', 'alice')).online).toBe(true);
    const members = await presence.members(room);
    expect(members.map((m) => [m.user, m.online, m.connections])).toEqual([
      ['alice', true, 1],
      ['bob', true, 1],
    ]);
    expect(await presence.join(room, alice)).toEqual({ changed: false });
    expect(await presence.leave(room, alice)).toEqual({ changed: true });
    await presence.disconnect(bob);
    expect((await presence.user('acme', 'bob')).online).toBe(false);
    expect(plain!.health().ok).toBe(true);
  });
});
