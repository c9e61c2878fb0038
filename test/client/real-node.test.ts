/**
 * The client SDK against real node processes (dist/cli/main.js; run `npm run build` first): a node killed
 * with SIGKILL mid-stream, a node paused with SIGSTOP, publishes queued while the node is down, the offline
 * queue bound, and message event names.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/client/index.js';
import { tempDir } from '../helpers/node-process.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { contiguous, historyHttp, publishHttp, RestartableNode, sdk, type Recorded } from './real-helpers.js';

const nodes: RestartableNode[] = [];
const recorded: Recorded[] = [];
afterEach(async () => {
  for (const r of recorded.splice(0)) r.client.close();
  for (const n of nodes.splice(0)) await n.dispose();
});

async function node(args: string[] = []): Promise<RestartableNode> {
  const n = new RestartableNode(tempDir('sb-client-'), { args });
  nodes.push(n);
  await n.start();
  return n;
}

function track(r: Recorded): Recorded {
  recorded.push(r);
  return r;
}

describe('SDK against a real node', () => {
  it('kill -9 mid-stream: every subscriber gets every acked message exactly once, in seq order', async () => {
    const n = await node();
    const room = 'stream';
    const subs = [0, 1, 2].map((i) => track(sdk(n.wsUrl, room, { user: `sub${i}` })));
    await waitFor(() => subs.every((s) => s.client.state === 'connected'), 15_000, 'subscribers connected');
    // Connected is not joined: the join reply may still be on its way. Publishing before it would make
    // the first acked messages precede the subscribers' join position.
    await waitFor(() => subs.every((s) => s.client.room(room).joined), 15_000, 'subscribers joined');

    // The publisher goes through another path (HTTP), numbering its messages and retrying each with its idem.
    const acked = new Map<number, { seq: number; epoch: string }>();
    let failures = 0;
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop; i++) {
        for (;;) {
          try {
            const r = await publishHttp(n.url, room, { i }, `pub-${i}`);
            acked.set(i, { seq: r.seq, epoch: r.epoch });
            break;
          } catch {
            failures++;
            if (stop) return;
            await sleep(50);
          }
        }
        await sleep(5);
      }
    })();

    await waitFor(() => acked.size >= 40, 20_000, '40 acks before the kill');
    await n.kill();
    await waitFor(() => subs.every((s) => s.client.state === 'reconnecting'), 10_000, 'subscribers reconnecting');
    await sleep(300);
    await n.start();
    const before = acked.size;
    await waitFor(() => acked.size >= before + 40, 30_000, '40 acks after the restart');
    stop = true;
    await publisher;

    const lastSeq = Math.max(...[...acked.values()].map((a) => a.seq));
    await waitFor(() => subs.every((s) => (s.messages[s.messages.length - 1]?.seq ?? 0) >= lastSeq), 30_000, 'subscribers caught up');
    const history = await historyHttp(n.url, room);
    const dupIdems = history.length - new Set(history.map((m) => (m.data as { i: number }).i)).size;
    console.log(
      `[client] kill -9: ${acked.size} acked, ${failures} failed HTTP attempts retried, ${history.length} stored, ${dupIdems} stored twice (idem forgotten by the restart)`,
    );

    for (const s of subs) {
      const bySeq = new Map<number, Message[]>();
      for (const m of s.messages) bySeq.set(m.seq, [...(bySeq.get(m.seq) ?? []), m]);
      // strictly in seq order, each seq once, nothing skipped
      expect(contiguous(s.messages)).toBe(true);
      for (const [i, a] of acked) {
        const got = bySeq.get(a.seq) ?? [];
        expect(got, `seq ${a.seq}`).toHaveLength(1);
        expect(got[0]!.data).toEqual({ i });
        expect(got[0]!.epoch).toBe(a.epoch);
      }
      // what the app saw is exactly what is stored
      expect(s.messages.map((m) => m.seq)).toEqual(history.filter((m) => m.seq >= s.messages[0]!.seq).map((m) => m.seq));
      expect(s.resets).toEqual([]);
      expect(s.states.some((e) => e.to === 'reconnecting')).toBe(true);
    }
  });

  it('publish with an event: members receive it as message.event; without one there is no event key', async () => {
    const n = await node();
    const room = 'presence-chat.1';
    const [a, b] = [track(sdk(n.wsUrl, room, { user: 'ev-a' })), track(sdk(n.wsUrl, room, { user: 'ev-b' }))];
    await waitFor(() => [a, b].every((r) => r.client.room(room).joined), 15_000, 'both joined');
    expect(await a.client.room(room).publish({ text: 'hi' }, { event: 'client-message' })).toMatchObject({ seq: 1, duplicate: false });
    await a.client.room(room).publish('plain');
    await waitFor(() => b.messages.length === 2, 10_000, 'two messages');
    expect(b.messages.map((m) => [m.seq, m.event, m.data])).toEqual([
      [1, 'client-message', { text: 'hi' }],
      [2, undefined, 'plain'],
    ]);
    expect(Object.keys(b.messages[1]!)).not.toContain('event');
    const page = await b.client.room(room).history();
    expect(page.messages.map((m) => m.event)).toEqual(['client-message', undefined]);
  });

  it('a paused (SIGSTOP) node is detected by the watchdog; the client recovers after SIGCONT', async () => {
    const n = await node(['--ping-interval-ms', '300', '--ping-timeout-ms', '5000']);
    const s = track(sdk(n.wsUrl, 'paused', { user: 'watcher', watchdog: { graceMs: 400 }, connectTimeoutMs: 1000 }));
    await waitFor(() => s.client.state === 'connected', 15_000, 'connected');
    await waitFor(() => s.client.room('paused').joined, 15_000, 'joined');
    await publishHttp(n.url, 'paused', 'before');
    await waitFor(() => s.messages.length === 1, 10_000, 'first message');

    const t0 = Date.now();
    n.node!.child.kill('SIGSTOP');
    try {
      await waitFor(() => s.client.state === 'reconnecting', 10_000, 'watchdog fired');
      const detectedMs = Date.now() - t0;
      const lost = s.states.find((e) => e.to === 'disconnected')!;
      expect(lost.error).toMatchObject({ code: 'timeout', message: expect.stringContaining('watchdog') });
      expect(detectedMs).toBeGreaterThanOrEqual(300);
      expect(detectedMs).toBeLessThan(5_000);
      await sleep(1_500); // attempts against the paused node time out too
    } finally {
      n.node!.child.kill('SIGCONT');
    }
    await waitFor(() => s.client.state === 'connected', 15_000, 'reconnected after SIGCONT');
    await waitFor(() => s.client.room('paused').joined, 5_000, 'rejoined');
    await publishHttp(n.url, 'paused', 'after');
    await waitFor(() => s.messages.length === 2, 10_000, 'message after resume');
    expect(s.messages.map((m) => [m.seq, m.data])).toEqual([
      [1, 'before'],
      [2, 'after'],
    ]);
    expect(s.resets).toEqual([]);
  });

  it('publishes made while the node is down are queued and flushed once after reconnect', async () => {
    const n = await node();
    const s = track(sdk(n.wsUrl, 'offline', { user: 'writer' }));
    const room = s.client.room('offline');
    await waitFor(() => room.joined, 15_000, 'joined');
    expect((await room.publish('live')).seq).toBe(1);

    await n.kill();
    await waitFor(() => s.client.state === 'reconnecting', 10_000, 'reconnecting');
    let settled = 0;
    const pending = Array.from({ length: 20 }, (_, i) => room.publish({ queued: i }).finally(() => settled++));
    await sleep(300);
    expect(settled).toBe(0);

    await n.start();
    const acks = await Promise.all(pending);
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    const history = await historyHttp(n.url, 'offline');
    expect(history.map((m) => m.data)).toEqual(['live', ...Array.from({ length: 20 }, (_, i) => ({ queued: i }))]);
    await waitFor(() => s.messages.length === 21, 10_000, 'own messages delivered');
    expect(contiguous(s.messages)).toBe(true);
  }, 60_000); // two node starts (embedded store) on a loaded 2-core machine

  it('a full offline queue rejects new publishes with a typed error; the queued ones still go out', async () => {
    const n = await node();
    const s = track(sdk(n.wsUrl, 'bounded', { user: 'writer', offlineQueue: { max: 5 } }));
    const room = s.client.room('bounded');
    await waitFor(() => room.joined, 15_000, 'joined');
    await n.kill();
    await waitFor(() => s.client.state === 'reconnecting', 10_000, 'reconnecting');
    const queued = Array.from({ length: 5 }, (_, i) => room.publish(i));
    const err = await room.publish('one too many').then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'SwitchboardClientError', code: 'offline_queue_full', retryable: true, room: 'bounded' });
    await n.start();
    expect((await Promise.all(queued)).map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await historyHttp(n.url, 'bounded')).map((m) => m.data)).toEqual([0, 1, 2, 3, 4]);
  }, 60_000);
});
