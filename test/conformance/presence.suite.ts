import { afterEach, describe, expect, it } from 'vitest';
import type { PresenceConn, PresenceOptions, PresenceStore, RoomMember } from '../../src/engines/presence/presence.js';
import type { RoomRef } from '../../src/engines/types.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** What a PresenceStore implementation provides to the conformance suite; one per test. */
export interface PresenceHarness {
  /**
   * `n` stores sharing one state, as `n` gateway nodes would (an in-process implementation may return
   * the same instance `n` times).
   */
  stores(n: number): Promise<PresenceStore[]>;
  /** Closes the stores and drops the state. */
  cleanup(): Promise<void>;
}

export type PresenceFactory = (options: Partial<PresenceOptions>) => Promise<PresenceHarness>;

/** Allowed difference between a timestamp taken by the test and one taken by the store. */
const CLOCK_SLACK_MS = 100;

function conn(tenant: string, user: string, nodeId: string, n: number): PresenceConn {
  return { tenant, user, nodeId, connId: `${nodeId}-${n}` };
}

function find(members: RoomMember[], user: string): RoomMember | undefined {
  return members.find((m) => m.user === user);
}

/**
 * Runs the PresenceStore contract (src/engines/presence/presence.ts) against an implementation.
 * `factory` gets option overrides (short TTLs) and must give fresh, isolated state on every call.
 */
export function presenceConformance(name: string, factory: PresenceFactory): void {
  describe(`PresenceStore conformance: ${name}`, () => {
    let harness: PresenceHarness | undefined;
    const open = async (options: Partial<PresenceOptions> = {}, n = 1): Promise<PresenceStore[]> => {
      harness = await factory(options);
      return harness.stores(n);
    };
    afterEach(async () => {
      await harness?.cleanup();
      harness = undefined;
    });

    const lobby: RoomRef = { tenant: 'acme', room: 'lobby' };

    it('lists an online member with the info of their latest join that gave one, on every node, and drops it with the user', async () => {
      const [s1, s2] = await open({}, 2);
      const a1 = { ...conn('acme', 'alice', 'n1', 1), info: { name: 'Alice', n: 1 } };
      const a2 = { ...conn('acme', 'alice', 'n2', 2), info: { name: 'Alice', n: 2 } };
      const b1 = conn('acme', 'bob', 'n1', 3);
      await s1!.join(lobby, a1);
      await s2!.join(lobby, b1);
      for (const s of [s1!, s2!]) {
        const members = await s.members(lobby);
        expect(find(members, 'alice')?.info).toEqual({ name: 'Alice', n: 1 });
        expect(find(members, 'bob')).not.toHaveProperty('info');
      }
      await s2!.join(lobby, a2);
      expect(find(await s1!.members(lobby), 'alice')?.info).toEqual({ name: 'Alice', n: 2 });
      // Another tenant's room of the same name does not see it.
      expect(await s1!.members({ tenant: 'other', room: 'lobby' })).toEqual([]);
      await s1!.leave(lobby, a1);
      await s2!.leave(lobby, a2);
      const gone = find(await s1!.members(lobby), 'alice');
      expect(gone?.online).toBe(false);
      expect(gone).not.toHaveProperty('info');
      // Back without info: listed without the old one.
      await s1!.join(lobby, conn('acme', 'alice', 'n1', 4));
      expect(find(await s2!.members(lobby), 'alice')).not.toHaveProperty('info');
    });

    it("lists the rooms of a tenant with online members, on every node, sorted, and no other tenant's", async () => {
      const [s1, s2] = await open({}, 2);
      const a = conn('acme', 'alice', 'n1', 1);
      const b = conn('acme', 'bob', 'n2', 2);
      await s1!.join({ tenant: 'acme', room: 'zeta' }, a);
      await s2!.join({ tenant: 'acme', room: 'alpha.1' }, b);
      await s2!.join({ tenant: 'other', room: 'hidden' }, conn('other', 'carol', 'n2', 3));
      for (const s of [s1!, s2!]) expect(await s.rooms('acme')).toEqual(['alpha.1', 'zeta']);
      await s1!.leave({ tenant: 'acme', room: 'zeta' }, a);
      for (const s of [s1!, s2!]) expect(await s.rooms('acme')).toEqual(['alpha.1']);
      expect(await s1!.rooms('nobody')).toEqual([]);
    });

    it("reports changed only on a user's first join and last leave of a room", async () => {
      const [s] = await open();
      const a1 = conn('acme', 'alice', 'n1', 1);
      const a2 = conn('acme', 'alice', 'n2', 2);
      const b1 = conn('acme', 'bob', 'n1', 3);
      for (const c of [a1, a2, b1]) await s!.connect(c);
      expect(await s!.join(lobby, a1)).toEqual({ changed: true });
      expect(await s!.join(lobby, a2)).toEqual({ changed: false });
      expect(await s!.join(lobby, a1)).toEqual({ changed: false });
      expect(await s!.join(lobby, b1)).toEqual({ changed: true });
      expect(await s!.leave(lobby, a1)).toEqual({ changed: false });
      expect(await s!.leave(lobby, a1)).toEqual({ changed: false });
      expect(await s!.leave(lobby, a2)).toEqual({ changed: true });
      expect(await s!.join(lobby, a2)).toEqual({ changed: true });
    });

    it('lists online members with their connection count and lastSeen, and leavers offline', async () => {
      const [s] = await open();
      const t0 = Date.now();
      const a1 = conn('acme', 'alice', 'n1', 1);
      const a2 = conn('acme', 'alice', 'n2', 2);
      const b1 = conn('acme', 'bob', 'n1', 3);
      for (const c of [a1, a2, b1]) {
        await s!.connect(c);
        await s!.join(lobby, c);
      }
      let members = await s!.members(lobby);
      expect(members).toHaveLength(2);
      expect(find(members, 'alice')).toMatchObject({ online: true, connections: 2 });
      expect(find(members, 'bob')).toMatchObject({ online: true, connections: 1 });
      for (const m of members) {
        expect(m.lastSeen).toBeGreaterThanOrEqual(t0 - CLOCK_SLACK_MS);
        expect(m.lastSeen).toBeLessThanOrEqual(Date.now() + CLOCK_SLACK_MS);
      }
      await s!.leave(lobby, a1);
      expect(find(await s!.members(lobby), 'alice')).toMatchObject({ online: true, connections: 1 });
      const beforeLeave = Date.now();
      await s!.leave(lobby, a2);
      const afterLeave = Date.now();
      members = await s!.members(lobby);
      const alice = find(members, 'alice');
      expect(alice).toMatchObject({ user: 'alice', online: false, connections: 0 });
      expect(alice!.lastSeen).toBeGreaterThanOrEqual(beforeLeave - CLOCK_SLACK_MS);
      expect(alice!.lastSeen).toBeLessThanOrEqual(afterLeave + CLOCK_SLACK_MS);
      expect(find(members, 'bob')).toMatchObject({ online: true, connections: 1 });
      expect(members.filter((m) => m.user === 'alice')).toHaveLength(1);
      expect(await s!.members({ tenant: 'acme', room: 'empty' })).toEqual([]);
    });

    it('keeps a user online while any connection on any node is alive; disconnect leaves every room', async () => {
      const [n1, n2] = await open({}, 2);
      const a1 = conn('acme', 'alice', 'n1', 1);
      const a2 = conn('acme', 'alice', 'n2', 2);
      expect(await n1!.user('acme', 'alice')).toEqual({ user: 'alice', online: false, lastSeen: 0, connections: 0 });
      await n1!.connect(a1);
      await n2!.connect(a2);
      // Every node sees the user's connections on every node (the cluster-wide per-user connection limit counts them).
      expect((await n1!.user('acme', 'alice')).connections).toBe(2);
      const other: RoomRef = { tenant: 'acme', room: 'other' };
      await n1!.join(lobby, a1);
      await n1!.join(other, a1);
      await n2!.join(lobby, a2);
      expect((await n2!.user('acme', 'alice')).online).toBe(true);
      await n1!.disconnect(a1);
      expect(await n2!.user('acme', 'alice')).toMatchObject({ online: true, connections: 1 });
      expect(find(await n1!.members(lobby), 'alice')).toMatchObject({ online: true, connections: 1 });
      expect(find(await n1!.members(other), 'alice')).toMatchObject({ online: false, connections: 0 });
      const before = Date.now();
      await n2!.disconnect(a2);
      const after = Date.now();
      const alice = await n1!.user('acme', 'alice');
      expect(alice.online).toBe(false);
      expect(alice.connections).toBe(0);
      expect(alice.lastSeen).toBeGreaterThanOrEqual(before - CLOCK_SLACK_MS);
      expect(alice.lastSeen).toBeLessThanOrEqual(after + CLOCK_SLACK_MS);
      expect(find(await n2!.members(lobby), 'alice')).toMatchObject({ online: false, connections: 0 });
    });

    it('expires connections not refreshed for ttlMs, with lastSeen = the last refresh', async () => {
      // Long enough that a test process starved for a second between two heartbeats (every ttlMs / 4)
      // does not expire a connection that is meant to stay alive.
      const ttlMs = 1_500;
      const [n1, n2] = await open({ ttlMs }, 2);
      const alice = conn('acme', 'alice', 'n1', 1);
      const bob = conn('acme', 'bob', 'n2', 2);
      await n1!.connect(alice);
      await n1!.join(lobby, alice);
      await n2!.connect(bob);
      await n2!.join(lobby, bob);
      // Heartbeats keep both alive for longer than the TTL.
      const start = Date.now();
      let lastBeatStart = 0;
      let lastBeatEnd = 0;
      while (Date.now() - start < ttlMs * 1.5) {
        lastBeatStart = Date.now();
        await n1!.heartbeat('n1', [alice.connId]);
        await n2!.heartbeat('n2', [bob.connId]);
        lastBeatEnd = Date.now();
        expect((await n1!.user('acme', 'alice')).online).toBe(true);
        expect((await n2!.user('acme', 'bob')).online).toBe(true);
        await sleep(ttlMs / 4);
      }
      // Node n1 "crashes": no more heartbeats for alice; bob's node keeps refreshing.
      await waitFor(
        async () => {
          await n2!.heartbeat('n2', [bob.connId]);
          return !(await n2!.user('acme', 'alice')).online;
        },
        10_000,
        'alice offline after the TTL',
      );
      expect(Date.now() - lastBeatStart).toBeGreaterThanOrEqual(ttlMs - CLOCK_SLACK_MS);
      const gone = await n2!.user('acme', 'alice');
      expect(gone.lastSeen).toBeGreaterThanOrEqual(lastBeatStart - CLOCK_SLACK_MS);
      expect(gone.lastSeen).toBeLessThanOrEqual(lastBeatEnd + CLOCK_SLACK_MS);
      const members = await n2!.members(lobby);
      expect(find(members, 'alice')).toMatchObject({ online: false, connections: 0 });
      expect(find(members, 'alice')!.lastSeen).toBeLessThanOrEqual(lastBeatEnd + CLOCK_SLACK_MS);
      expect(find(members, 'bob')).toMatchObject({ online: true, connections: 1 });
      expect((await n2!.user('acme', 'bob')).online).toBe(true);
      // Coming back on a new connection is a first join again.
      const again = conn('acme', 'alice', 'n3', 3);
      await n2!.connect(again);
      expect(await n2!.join(lobby, again)).toEqual({ changed: true });
      expect(find(await n2!.members(lobby), 'alice')).toMatchObject({ online: true, connections: 1 });
    });

    it('a heartbeat refreshes only the listed connections and ignores unknown ids', async () => {
      const ttlMs = 1_500; // a second's starvation between two of alice's heartbeats must not expire her
      const [s] = await open({ ttlMs });
      const a = conn('acme', 'alice', 'n1', 1);
      const b = conn('acme', 'bob', 'n1', 2);
      await s!.connect(a);
      await s!.connect(b);
      await s!.heartbeat('n1', []);
      await s!.heartbeat('n1', ['n1-unknown', 'n9-9']);
      await waitFor(
        async () => {
          await s!.heartbeat('n1', [a.connId]);
          return !(await s!.user('acme', 'bob')).online;
        },
        10_000,
        'bob offline',
        ttlMs / 30,
      );
      expect((await s!.user('acme', 'alice')).online).toBe(true);
    });

    it('lists leavers for recentMs only', async () => {
      // Long enough that a starved test process still reads the leaver before recentMs has passed.
      const recentMs = 1_500;
      const [s] = await open({ recentMs });
      const a = conn('acme', 'alice', 'n1', 1);
      const b = conn('acme', 'bob', 'n1', 2);
      for (const c of [a, b]) {
        await s!.connect(c);
        await s!.join(lobby, c);
      }
      const beforeLeave = Date.now();
      await s!.leave(lobby, a);
      expect(find(await s!.members(lobby), 'alice')).toMatchObject({ online: false });
      await waitFor(async () => find(await s!.members(lobby), 'alice') === undefined, 10_000, 'alice forgotten', 50);
      expect(Date.now() - beforeLeave).toBeGreaterThanOrEqual(recentMs - CLOCK_SLACK_MS);
      expect(await s!.members(lobby)).toEqual([expect.objectContaining({ user: 'bob', online: true })]);
    });

    it('keeps at most recentMax leavers per room, the most recent ones; a returning user is listed once', async () => {
      const [s] = await open({ recentMax: 2 });
      const stay = ['s1', 's2', 's3'].map((u, i) => conn('acme', u, 'n1', 100 + i));
      const go = ['u1', 'u2', 'u3', 'u4'].map((u, i) => conn('acme', u, 'n1', i));
      for (const c of [...stay, ...go]) {
        await s!.connect(c);
        await s!.join(lobby, c);
      }
      for (const c of go) {
        await s!.leave(lobby, c);
        await sleep(5); // distinct leave times
      }
      let members = await s!.members(lobby);
      expect(
        members
          .filter((m) => m.online)
          .map((m) => m.user)
          .sort(),
      ).toEqual(['s1', 's2', 's3']);
      expect(
        members
          .filter((m) => !m.online)
          .map((m) => m.user)
          .sort(),
      ).toEqual(['u3', 'u4']);
      await s!.join(lobby, go[3]!);
      members = await s!.members(lobby);
      expect(members.filter((m) => m.user === 'u4')).toEqual([expect.objectContaining({ online: true, connections: 1 })]);
    });

    it('removeNode drops every connection of that node at once', async () => {
      const [n1, n2] = await open({}, 2);
      const a1 = conn('acme', 'alice', 'n1', 1);
      const b1 = conn('acme', 'bob', 'n1', 2);
      const a2 = conn('acme', 'alice', 'n2', 3);
      const c2 = conn('acme', 'carol', 'n2', 4);
      for (const c of [a1, b1]) {
        await n1!.connect(c);
        await n1!.join(lobby, c);
      }
      for (const c of [a2, c2]) {
        await n2!.connect(c);
        await n2!.join(lobby, c);
      }
      const before = Date.now();
      await n2!.removeNode('n1');
      const after = Date.now();
      const members = await n2!.members(lobby);
      expect(find(members, 'alice')).toMatchObject({ online: true, connections: 1 });
      expect(find(members, 'carol')).toMatchObject({ online: true, connections: 1 });
      expect(find(members, 'bob')).toMatchObject({ online: false, connections: 0 });
      const bob = await n1!.user('acme', 'bob');
      expect(bob.online).toBe(false);
      expect(bob.lastSeen).toBeGreaterThanOrEqual(before - CLOCK_SLACK_MS);
      expect(bob.lastSeen).toBeLessThanOrEqual(after + CLOCK_SLACK_MS);
      expect(await n1!.leave(lobby, b1)).toEqual({ changed: false });
    });

    it('never mixes tenants: same room and user names in two tenants are independent', async () => {
      const [s] = await open();
      const other: RoomRef = { tenant: 'globex', room: 'lobby' };
      const alice = conn('acme', 'alice', 'n1', 1);
      const bob = conn('globex', 'bob', 'n1', 2);
      const aliceG = conn('globex', 'alice', 'n1', 3);
      for (const c of [alice, bob]) await s!.connect(c);
      expect(await s!.join(lobby, alice)).toEqual({ changed: true });
      expect(await s!.join(other, bob)).toEqual({ changed: true });
      expect((await s!.members(lobby)).map((m) => m.user)).toEqual(['alice']);
      expect((await s!.members(other)).map((m) => m.user)).toEqual(['bob']);
      expect(await s!.user('globex', 'alice')).toEqual({ user: 'alice', online: false, lastSeen: 0, connections: 0 });
      expect((await s!.user('acme', 'bob')).online).toBe(false);
      await s!.connect(aliceG);
      expect(await s!.join(other, aliceG)).toEqual({ changed: true });
      await s!.disconnect(alice);
      expect((await s!.user('globex', 'alice')).online).toBe(true);
      expect(find(await s!.members(other), 'alice')).toMatchObject({ online: true });
      expect(find(await s!.members(lobby), 'alice')).toMatchObject({ online: false });
    });
  });
}
