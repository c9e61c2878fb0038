import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backplane, BackplaneSubscription } from '../../src/engines/backplane/backplane.js';
import { NodeDirectory } from '../../src/engines/backplane/directory.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** What a Backplane implementation provides to the conformance suite; one per test. */
export interface BackplaneHarness {
  /** `n` new nodes attached to the same broker (each is a separate connection). */
  nodes(n: number): Promise<Backplane[]>;
  /** Makes the broker unavailable and available again, if the implementation can simulate it. */
  outage?: { begin(): Promise<void>; end(): Promise<void> };
  /** Closes every node and releases the broker. */
  cleanup(): Promise<void>;
}

/** Time given to a message that must NOT arrive, after a later message on a watched subject did. */
const SETTLE_MS = 30;

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Inbox {
  readonly got: Uint8Array[];
  readonly texts: () => string[];
  readonly sub: BackplaneSubscription;
}

async function inbox(node: Backplane, subject: string): Promise<Inbox> {
  const got: Uint8Array[] = [];
  const sub = await node.subscribe(subject, (payload) => got.push(payload));
  return { got, sub, texts: () => got.map((p) => dec.decode(p)) };
}

/**
 * Runs the Backplane contract (src/engines/backplane/backplane.ts) against an implementation.
 * `factory` is called before every test and must give an isolated broker (or unique subjects' space).
 */
export function backplaneConformance(name: string, factory: () => Promise<BackplaneHarness>): void {
  describe(`Backplane conformance: ${name}`, () => {
    let harness: BackplaneHarness;
    let prefix = 0;
    /** A subject no other test uses. */
    const subject = (suffix: string): string => `t${Date.now().toString(36)}${++prefix}.${suffix}`;

    beforeEach(async () => {
      harness = await factory();
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    it('delivers the payload bytes unchanged to subscribers on every node, including the publisher', async () => {
      const nodes = await harness.nodes(3);
      const s = subject('room.bytes');
      const boxes = await Promise.all(nodes.map((n) => inbox(n, s)));
      const payload = new Uint8Array([0, 1, 2, 127, 128, 254, 255, 10, 13, 0]);
      await nodes[0]!.publish(s, payload);
      await nodes[0]!.publish(s, new Uint8Array(0));
      await waitFor(() => boxes.every((b) => b.got.length === 2), 5_000, 'delivery to all nodes');
      for (const box of boxes) {
        expect(Array.from(box.got[0]!)).toEqual(Array.from(payload));
        expect(box.got[1]!.length).toBe(0);
      }
    });

    it('delivers each message at most once per subscription, also with two subscriptions on one node', async () => {
      const [a, b] = await harness.nodes(2);
      const s = subject('room.once');
      const first = await inbox(b!, s);
      const second = await inbox(b!, s);
      const remote = await inbox(a!, s);
      for (let i = 0; i < 20; i++) await a!.publish(s, enc.encode(`m${i}`));
      const all = [first, second, remote];
      await waitFor(() => all.every((x) => x.got.length >= 20), 5_000, '20 messages per subscription');
      await sleep(SETTLE_MS);
      const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
      for (const x of all) expect(x.texts()).toEqual(expected);
    });

    it('keeps publish order per publisher and subject at every subscriber', async () => {
      const nodes = await harness.nodes(3);
      const s = subject('room.order');
      const boxes = await Promise.all(nodes.map((n) => inbox(n, s)));
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        sends.push(nodes[1]!.publish(s, enc.encode(`a${i}`)));
        sends.push(nodes[2]!.publish(s, enc.encode(`b${i}`)));
      }
      await Promise.all(sends);
      await waitFor(() => boxes.every((b) => b.got.length === 600), 10_000, '600 messages per node');
      for (const box of boxes) {
        const texts = box.texts();
        expect(texts.filter((t) => t.startsWith('a'))).toEqual(Array.from({ length: 300 }, (_, i) => `a${i}`));
        expect(texts.filter((t) => t.startsWith('b'))).toEqual(Array.from({ length: 300 }, (_, i) => `b${i}`));
      }
    });

    it('a subscription is active when subscribe resolves: a publish right after, from another node, reaches it', async () => {
      const [a, b] = await harness.nodes(2);
      for (let i = 0; i < 10; i++) {
        const s = subject(`room.ready${i}`);
        const box = await inbox(b!, s);
        await a!.publish(s, enc.encode('hello'));
        await waitFor(() => box.got.length === 1, 5_000, `first message on ${s}`);
      }
    });

    it('is interest based: only exactly subscribed subjects are delivered', async () => {
      const [a, b] = await harness.nodes(2);
      const base = subject('room');
      const watched = `${base}.a`;
      const box = await inbox(b!, watched);
      for (const other of [`${base}.b`, `${base}.a.x`, base, `${base}.A`]) await a!.publish(other, enc.encode(other));
      await a!.publish(watched, enc.encode('sentinel'));
      await waitFor(() => box.got.length >= 1, 5_000, 'sentinel');
      await sleep(SETTLE_MS);
      expect(box.texts()).toEqual(['sentinel']);
    });

    it('delivers nothing more on a subscription after its unsubscribe resolved; other subscriptions go on', async () => {
      const [a, b] = await harness.nodes(2);
      const s = subject('room.unsub');
      const gone = await inbox(b!, s);
      const kept = await inbox(b!, s);
      const remote = await inbox(a!, s);
      await a!.publish(s, enc.encode('before'));
      await waitFor(() => gone.got.length === 1 && kept.got.length === 1, 5_000, 'first message');
      await gone.sub.unsubscribe();
      expect(gone.sub.subject).toBe(s);
      for (let i = 0; i < 5; i++) await a!.publish(s, enc.encode(`after${i}`));
      await waitFor(() => kept.got.length === 6 && remote.got.length === 6, 5_000, 'messages after unsubscribe');
      await sleep(SETTLE_MS);
      expect(gone.texts()).toEqual(['before']);
      await remote.sub.unsubscribe();
      await b!.publish(s, enc.encode('last'));
      await waitFor(() => kept.got.length === 7, 5_000, 'last message');
      await sleep(SETTLE_MS);
      expect(remote.got.length).toBe(6);
    });

    it('is not durable: a message published before a subscription exists is never delivered to it', async () => {
      const [a, b] = await harness.nodes(2);
      const s = subject('room.nodurable');
      await a!.publish(s, enc.encode('early'));
      const box = await inbox(b!, s);
      await a!.publish(s, enc.encode('late'));
      await waitFor(() => box.got.length >= 1, 5_000, 'late message');
      await sleep(SETTLE_MS);
      expect(box.texts()).toEqual(['late']);
    });

    it('reports health, and after close rejects publish and stops delivery to that node only', async () => {
      const [a, b, c] = await harness.nodes(3);
      expect(a!.health().ok).toBe(true);
      expect(typeof a!.kind).toBe('string');
      const s = subject('room.close');
      const onB = await inbox(b!, s);
      const onC = await inbox(c!, s);
      await b!.close();
      expect(b!.health().ok).toBe(false);
      await expect(b!.publish(s, enc.encode('x'))).rejects.toMatchObject({ name: 'EngineError', engine: 'backplane', code: 'closed' });
      await a!.publish(s, enc.encode('after-close'));
      await waitFor(() => onC.got.length === 1, 5_000, 'delivery to the open node');
      await sleep(SETTLE_MS);
      expect(onB.got.length).toBe(0);
      expect(a!.health().ok).toBe(true);
    });

    it('surfaces a broker outage: publish rejects and health says why; it recovers afterwards', async (ctx) => {
      const outage = harness.outage;
      if (outage === undefined) {
        ctx.skip();
        return;
      }
      const [a, b] = await harness.nodes(2);
      const s = subject('room.outage');
      const box = await inbox(b!, s);
      await outage.begin();
      await waitFor(() => !a!.health().ok, 10_000, 'unhealthy during outage');
      const health = a!.health();
      expect(typeof health.detail).toBe('string');
      expect(health.detail!.length).toBeGreaterThan(0);
      await expect(a!.publish(s, enc.encode('lost'))).rejects.toMatchObject({ name: 'EngineError', engine: 'backplane', code: 'unavailable' });
      await outage.end();
      await waitFor(() => a!.health().ok && b!.health().ok, 20_000, 'healthy after outage');
      await waitFor(
        async () => {
          await a!.publish(s, enc.encode('back'));
          return box.texts().includes('back');
        },
        20_000,
        'delivery after outage',
        100,
      );
      expect(box.texts()).not.toContain('lost');
    });

    describe('node announcements (NodeDirectory over this backplane)', () => {
      const INTERVAL = 100;
      const directories: NodeDirectory<{ load: number }>[] = [];
      afterEach(async () => {
        await Promise.allSettled(directories.splice(0).map((d) => d.stop()));
      });
      /**
       * Peers are forgotten after `expireAfterMs`; the default here is long, so a starved test process does
       * not see live peers expire. Only the expiry test passes null: the directory's own default (3 × INTERVAL).
       */
      const directory = (
        bp: Backplane,
        id: string,
        s: string,
        errors: unknown[] = [],
        expireAfterMs: number | null = 5_000,
      ): NodeDirectory<{ load: number }> => {
        let load = 0;
        const d = new NodeDirectory(bp, id, {
          intervalMs: INTERVAL,
          ...(expireAfterMs !== null ? { expireAfterMs } : {}),
          subject: s,
          snapshot: () => ({ load: ++load }),
          onError: (e) => errors.push(e),
        });
        directories.push(d);
        return d;
      };
      const ids = (d: NodeDirectory<unknown>): string[] => d.nodes().map((n) => n.node);

      it('every node lists every node once, sorted, with fresh info; a node that stops leaves the others at once', async () => {
        const bps = await harness.nodes(3);
        const s = subject('nodes');
        const dirs = bps.map((bp, i) => directory(bp, `node-${3 - i}`, s));
        await Promise.all(dirs.map((d) => d.start()));
        await waitFor(() => dirs.every((d) => ids(d).join() === 'node-1,node-2,node-3'), 10_000, 'all nodes to see all nodes');
        const seen = dirs[0]!.nodes();
        expect(seen.filter((n) => n.self).map((n) => n.node)).toEqual(['node-3']);
        const before = seen.find((n) => n.node === 'node-1')!.info.load;
        await waitFor(() => (dirs[0]!.nodes().find((n) => n.node === 'node-1')?.info.load ?? 0) > before, 10_000, 'a newer announcement');
        await dirs[1]!.stop(); // node-2, with a goodbye
        // Well within expireAfterMs (5 s): only the goodbye can remove node-2 this soon.
        await waitFor(() => ids(dirs[0]!).join() === 'node-1,node-3' && ids(dirs[2]!).join() === 'node-1,node-3', 2_000, 'node-2 gone at once');
      });

      it('a node that goes silent expires after expireAfterMs; garbage on the subject is reported, not fatal', async () => {
        const [a, b] = await harness.nodes(2);
        const s = subject('nodes');
        const errors: unknown[] = [];
        const da = directory(a!, 'alive', s, errors, null); // null: the directory's default, 3 × INTERVAL
        const db = directory(b!, 'silent', s, [], null);
        await Promise.all([da.start(), db.start()]);
        await waitFor(() => ids(da).join() === 'alive,silent', 10_000, 'both nodes seen');
        await b!.publish(s, enc.encode('not json'));
        await b!.publish(s, enc.encode(JSON.stringify({ v: 1, node: 'x' })));
        await waitFor(() => errors.length >= 2, 5_000, 'bad announcements reported');
        expect(String(errors[0])).toMatch(/bad announcement/);
        await b!.close(); // dies without a goodbye: its announcements stop
        await waitFor(() => ids(da).join() === 'alive', 5_000, 'the silent node to expire');
        expect(ids(da)).toEqual(['alive']);
      });
    });
  });
}
