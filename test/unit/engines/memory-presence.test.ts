/** Behaviour of the in-process presence store beyond the shared contract, on a controlled clock. */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryPresenceStore } from '../../../src/engines/presence/memory.js';
import type { PresenceConn } from '../../../src/engines/presence/presence.js';
import { waitFor } from '../../helpers/wait.js';

const room = { tenant: 'acme', room: 'lobby' };
const conn = (user: string, n: number, nodeId = 'n1', tenant = 'acme'): PresenceConn => ({
  tenant,
  user,
  nodeId,
  connId: `${nodeId}-${n}`,
});

describe('MemoryPresenceStore', () => {
  let clock = 1_000_000;
  const now = (): number => clock;
  const stores: MemoryPresenceStore[] = [];
  const open = (options: ConstructorParameters<typeof MemoryPresenceStore>[0] = {}): MemoryPresenceStore => {
    const store = new MemoryPresenceStore(options, now);
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('expires lazily on reads, with lastSeen = the last heartbeat', async () => {
    const s = open({ ttlMs: 1000, sweepMs: 60_000 });
    const a = conn('alice', 1);
    await s.connect(a);
    await s.join(room, a);
    clock += 600;
    await s.heartbeat('n1', [a.connId]);
    const beat = clock;
    clock += 1000;
    expect((await s.user('acme', 'alice')).online).toBe(true);
    clock += 1;
    expect(await s.user('acme', 'alice')).toEqual({ user: 'alice', online: false, lastSeen: beat, connections: 0 });
    expect(await s.members(room)).toEqual([{ user: 'alice', online: false, connections: 0, lastSeen: beat }]);
  });

  it("a heartbeat does not revive an expired connection, nor refresh another node's", async () => {
    const s = open({ ttlMs: 1000, sweepMs: 60_000 });
    const a = conn('alice', 1);
    await s.connect(a);
    await s.heartbeat('n2', [a.connId]);
    clock += 1001;
    await s.heartbeat('n1', [a.connId]);
    expect((await s.user('acme', 'alice')).online).toBe(false);
  });

  it('sweeps expired connections and forgets old leavers without any read', async () => {
    const s = open({ ttlMs: 1000, recentMs: 5000, sweepMs: 10 });
    const a = conn('alice', 1);
    await s.connect(a);
    await s.join(room, a);
    expect(s.size()).toEqual({ connections: 1, rooms: 1, tenants: 1 });
    clock += 1001;
    await waitFor(() => s.size().connections === 0, 2_000, 'sweep');
    expect(s.size().rooms).toBe(1);
    clock += 5000;
    await waitFor(() => s.size().tenants === 0, 2_000, 'leavers forgotten');
    expect(s.size()).toEqual({ connections: 0, rooms: 0, tenants: 0 });
    expect(await s.user('acme', 'alice')).toEqual({ user: 'alice', online: false, lastSeen: 0, connections: 0 });
  });

  it('keeps the newest recentMax leavers even when an expiry is recorded late', async () => {
    const s = open({ ttlMs: 1000, recentMax: 2, sweepMs: 60_000 });
    const old = conn('old', 1);
    await s.connect(old);
    await s.join(room, old);
    clock += 500;
    for (const [i, user] of ['b', 'c'].entries()) {
      const c = conn(user, 10 + i);
      await s.connect(c);
      await s.join(room, c);
      clock += 10;
      await s.leave(room, c);
    }
    clock += 1000; // "old" expires now, but its lastSeen is older than b's and c's leaves
    const offline = (await s.members(room)).map((m) => m.user);
    expect(offline).toEqual(['c', 'b']);
  });

  it("rejects a connection used in another tenant's room, and calls after close", async () => {
    const s = open();
    const foreign = conn('alice', 1, 'n1', 'globex');
    await expect(s.join(room, foreign)).rejects.toThrow(/tenant/);
    await s.close();
    await expect(s.connect(conn('bob', 2))).rejects.toThrow(/closed/);
  });
});
