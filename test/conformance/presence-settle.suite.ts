/**
 * The settling contract of the PresenceStore (src/engines/presence/settle.ts): webhook transitions decided once for
 * the cluster and debounced by a grace period. Run by every PresenceStore implementation's conformance file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PresenceConn, PresenceStore } from '../../src/engines/presence/presence.js';
import type { SettleScope, Settled } from '../../src/engines/presence/settle.js';
import type { RoomRef } from '../../src/engines/types.js';
import { sleep, waitFor } from '../helpers/wait.js';
import type { PresenceFactory, PresenceHarness } from './presence.suite.js';

const room: RoomRef = { tenant: 'acme', room: 'lobby' };
const GRACE = 300;
const scope: SettleScope = { members: true, graceMs: GRACE };

function conn(user: string, nodeId: string, n: number): PresenceConn {
  return { tenant: 'acme', user, nodeId, connId: `${nodeId}-${n}` };
}

/** What all settles returned, flattened to event names, in order. */
function names(all: readonly Settled[]): string[] {
  const out: string[] = [];
  for (const s of all) {
    if (s.occupied) out.push('occupied');
    for (const u of s.added) out.push(`added:${u}`);
    for (const u of s.removed) out.push(`removed:${u}`);
    if (s.vacated) out.push('vacated');
  }
  return out;
}

export function presenceSettleConformance(name: string, factory: PresenceFactory): void {
  describe(`PresenceStore settling conformance: ${name}`, () => {
    let harness: PresenceHarness | undefined;
    afterEach(async () => {
      await harness?.cleanup();
      harness = undefined;
    });
    const open = async (n: number, ttlMs = 45_000): Promise<PresenceStore[]> => {
      harness = await factory({ ttlMs });
      return harness.stores(n);
    };
    /** What the stores do on a presence change, as the webhook layer does it. */
    const join = async (s: PresenceStore, c: PresenceConn, out: Settled[]): Promise<void> => {
      const { changed } = await s.join(room, c);
      if (changed) out.push(await s.settleJoin(room, c.user, scope));
      await s.watch(room, 45_000);
    };
    const leave = async (s: PresenceStore, c: PresenceConn): Promise<void> => {
      const { changed } = await s.leave(room, c);
      if (changed) await s.watch(room, GRACE);
    };
    const due = async (stores: PresenceStore[], out: Settled[]): Promise<void> => {
      for (const s of stores) out.push(...(await s.settleDue(() => scope, 100)));
    };

    it('reports the first member as occupied and each user added once, from any node, however many connections', async () => {
      const [s1, s2, s3] = await open(3);
      const out: Settled[] = [];
      await Promise.all([join(s1!, conn('alice', 'n1', 1), out), join(s2!, conn('bob', 'n2', 2), out), join(s3!, conn('alice', 'n3', 3), out)]);
      await join(s1!, conn('alice', 'n1', 4), out);
      expect(names(out).filter((n) => n === 'occupied')).toHaveLength(1);
      expect(
        names(out)
          .filter((n) => n.startsWith('added'))
          .sort(),
      ).toEqual(['added:alice', 'added:bob']);
      await due([s1!, s2!, s3!], out);
      expect(names(out)).toHaveLength(3);
    });

    it('reports removed and vacated only after the grace period, removed first', async () => {
      const [s1, s2] = await open(2);
      const out: Settled[] = [];
      const a = conn('alice', 'n1', 1);
      await join(s1!, a, out);
      out.length = 0;
      const left = Date.now();
      await leave(s1!, a);
      await waitFor(
        async () => {
          await due([s1!, s2!], out);
          return out.some((s) => s.vacated);
        },
        5_000,
        'vacated',
      );
      expect(Date.now() - left).toBeGreaterThanOrEqual(GRACE - 50);
      expect(names(out)).toEqual(['removed:alice', 'vacated']);
      // Settled: nothing more, ever.
      await sleep(GRACE);
      await due([s1!, s2!], out);
      expect(names(out)).toEqual(['removed:alice', 'vacated']);
    });

    it('reports nothing for a user who leaves and comes back within the grace period, on another node', async () => {
      const [s1, s2] = await open(2);
      const out: Settled[] = [];
      const a1 = conn('alice', 'n1', 1);
      await join(s1!, a1, out);
      await join(s2!, conn('bob', 'n2', 2), out);
      out.length = 0;
      await leave(s1!, a1);
      await leave(s2!, conn('bob', 'n2', 2));
      // Both back elsewhere within the grace: the room was empty meanwhile, it is neither vacated nor occupied again.
      await join(s2!, conn('alice', 'n2', 3), out);
      await join(s1!, conn('bob', 'n1', 4), out);
      await sleep(GRACE * 2);
      await due([s1!, s2!], out);
      expect(names(out)).toEqual([]);
    });

    it("finds a crashed node's members by their expiry: removed and vacated without anyone leaving", async () => {
      const ttl = 400;
      const [s1, s2] = await open(2, ttl);
      const out: Settled[] = [];
      await join(s1!, conn('alice', 'n1', 1), out);
      await s1!.watch(room, ttl); // the room stays watched while occupied (join watched it later than this)
      out.length = 0;
      // Node n1 "crashes": no heartbeat, no leave. Another node settles.
      await waitFor(
        async () => {
          await due([s2!], out);
          return out.some((s) => s.vacated);
        },
        10_000,
        'vacated after expiry',
        50,
      );
      expect(names(out)).toEqual(['removed:alice', 'vacated']);
    });

    it('keeps a user present across a crash when they reconnect elsewhere before their old connection expires', async () => {
      const ttl = 400;
      const [s1, s2] = await open(2, ttl);
      const out: Settled[] = [];
      await join(s1!, conn('alice', 'n1', 1), out);
      out.length = 0;
      const back = conn('alice', 'n2', 2);
      await join(s2!, back, out); // not changed: the old connection still counts
      const until = Date.now() + ttl * 3;
      while (Date.now() < until) {
        await s2!.heartbeat('n2', [back.connId]);
        await s2!.watch(room, 0);
        await due([s2!], out);
        await sleep(50);
      }
      expect(names(out)).toEqual([]);
    });

    it('reports only occupancy in a room whose members are not reported', async () => {
      const [s1] = await open(1);
      const out: Settled[] = [];
      const occupancy: SettleScope = { members: false, graceMs: 0 };
      const a = conn('alice', 'n1', 1);
      await s1!.join(room, a);
      out.push(await s1!.settleJoin(room, 'alice', occupancy));
      await s1!.leave(room, a);
      await s1!.watch(room, 0);
      await waitFor(async () => {
        out.push(...(await s1!.settleDue(() => occupancy, 10)));
        return out.some((s) => s.vacated);
      });
      expect(names(out)).toEqual(['occupied', 'vacated']);
    });
  });
}
