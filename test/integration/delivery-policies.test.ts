/**
 * Delivery policies for members that read slower than a room is published to (docs/operations.md "Delivery
 * policies"), on a real node with real sockets: a member that stops reading in a `conflate` room keeps its
 * connection and, when it reads again, gets the newest message of each key it missed and then every new one;
 * in a `drop` room it gets a `skipped` frame naming exactly the seqs it missed (history has them) and the newest
 * message; a room's publish cap refuses with `rate_limited` and uses up no seq. Whatever a member receives is in
 * seq order and never twice; members that keep up get every message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { openRawWs, type RawWs } from '../helpers/raw-ws.js';
import { API_KEY } from '../helpers/tokens.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

let node: NodeProcess;

const POLICIES = [
  { rooms: ['tick-*'], delivery: 'conflate' },
  { rooms: ['drop-*'], delivery: 'drop' },
  { rooms: ['capped'], maxPublishRate: 5 },
];

beforeAll(async () => {
  node = await startNodeProcess({
    args: [
      '--api-key',
      API_KEY,
      '--room-policies',
      JSON.stringify(POLICIES),
      '--ping-interval-ms',
      '120000',
      '--ping-timeout-ms',
      '60000',
      // A Pusher app whose id is the tenant of --dev v1 connections: its channels are the same rooms.
      '--pusher-apps',
      JSON.stringify([{ id: 'default', key: 'pkey', secret: 'psecret-0123456789' }]),
      '--pusher-activity-timeout-s',
      '120',
    ],
  });
}, 60_000);
afterAll(async () => {
  await node?.kill();
});

async function metric(name: string, label: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

interface Published {
  seq: number;
  key: string;
  n: number;
}

/** A member on a raw socket that can stop reading; its frames parsed in order. */
async function slowMember(user: string, room: string): Promise<RawWs & { frames(): Frame[] }> {
  const raw = await openRawWs(node.port, '/ws', { keepText: true });
  raw.sendText(JSON.stringify({ type: 'connect', user }));
  raw.sendText(JSON.stringify({ type: 'join', id: 1, room }));
  const parsed: Frame[] = [];
  const frames = (): Frame[] => {
    for (let i = parsed.length; i < raw.texts.length; i++) parsed.push(JSON.parse(raw.texts[i]!) as Frame);
    return parsed;
  };
  await waitFor(() => frames().some((f) => f.type === 'joined'), 10_000, `${user} joined`);
  return Object.assign(raw, { frames });
}

/** Publishes `count` messages with keys k0…k(keys-1) in turn, `size` bytes each, pipelined; returns them by seq. */
async function publish(pub: TestClient, room: string, from: number, count: number, keys: number, size: number): Promise<Published[]> {
  const pad = 'x'.repeat(size);
  const out: Published[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, (_, j) => from + i + j);
    const acks = await Promise.all(batch.map((n) => pub.request({ type: 'publish', room, key: `k${n % keys}`, data: { n, pad } })));
    acks.forEach((a, j) => out.push({ seq: a.seq as number, key: `k${batch[j]! % keys}`, n: batch[j]! }));
  }
  return out;
}

/**
 * Publishes 8 KB messages on `keys` keys until the node counts one more member behind in a `policy` room (loopback
 * socket buffers take several MB before it sees a reader that stopped); at most 6,000. Returns them by seq.
 */
async function publishUntilBehind(pub: TestClient, room: string, policy: 'conflate' | 'drop', keys: number): Promise<Published[]> {
  const label = `policy="${policy}"`;
  const before = await metric('switchboard_members_behind_total', label);
  const published: Published[] = [];
  while ((await metric('switchboard_members_behind_total', label)) === before) {
    expect(published.length, 'the reader fell behind within 6,000 messages').toBeLessThan(6_000);
    published.push(...(await publish(pub, room, published.length, 200, keys, 8_000)));
  }
  return published;
}

function messagesOf(frames: Frame[], room: string): Frame[] {
  return frames.filter((f) => f.type === 'message' && f.room === room);
}

function expectIncreasing(seqs: number[]): void {
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!, `seq ${seqs[i]} after ${seqs[i - 1]}`).toBeGreaterThan(seqs[i - 1]!);
}

describe('conflate', () => {
  it('a member that stops reading keeps its connection and, reading again, gets the newest of each key it missed, then every new message', async () => {
    const room = 'tick-a';
    const slow = await slowMember('slow', room);
    const healthy = await TestClient.connect(node.wsUrl, { user: 'healthy' });
    await healthy.request({ type: 'join', room });
    const pub = await TestClient.connect(node.wsUrl, { user: 'pub' });
    await pub.request({ type: 'join', room });

    slow.pause();
    const published = await publishUntilBehind(pub, room, 'conflate', 10);
    // While it is behind: more messages on 10 keys, of which it must get only each key's newest.
    published.push(...(await publish(pub, room, published.length, 57, 10, 100)));
    slow.resume();

    const newest = published.at(-1)!.seq;
    await waitFor(() => messagesOf(slow.frames(), room).at(-1)?.seq === newest, 30_000, 'the slow member caught up');
    published.push(...(await publish(pub, room, published.length, 20, 10, 100)));
    await waitFor(() => messagesOf(slow.frames(), room).at(-1)?.seq === published.at(-1)!.seq, 10_000, 'the new messages');
    expect(slow.closeFrame()).toBeNull();

    // Walk what it got: every message in turn while it keeps up; each catch-up names the seqs it covers and is
    // followed by exactly the newest message of each key among them, in seq order. (A burst past the bound makes a
    // member behind for a moment too: several catch-ups are fine, each must be exact.)
    const frames = slow.frames().filter((f) => f.room === room && (f.type === 'message' || f.type === 'catchup'));
    const bySeq = new Map(published.map((p) => [p.seq, p]));
    let last = 0;
    let catchups = 0;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.type === 'message') {
        expect(f.seq, 'a message in turn').toBe(last + 1);
        last = f.seq as number;
        continue;
      }
      catchups++;
      expect(f.from).toBe(last + 1);
      expect(f.complete).toBe(true);
      const newestOfKey = new Map<string, number>();
      for (let seq = f.from as number; seq <= (f.to as number); seq++) newestOfKey.set(bySeq.get(seq)!.key, seq);
      const expected = [...newestOfKey.values()].sort((x, y) => x - y);
      const got = frames.slice(i + 1, i + 1 + (f.keys as number));
      expect(got.map((m) => m.seq)).toEqual(expected);
      // each carries its key and that key's newest data
      for (const m of got) expect((m.data as { n: number }).n).toBe(bySeq.get(m.seq as number)!.n);
      for (const m of got) expect(m.key).toBe(bySeq.get(m.seq as number)!.key);
      i += f.keys as number;
      last = f.to as number;
    }
    expect(catchups).toBeGreaterThanOrEqual(1);
    expect(last).toBe(published.at(-1)!.seq);
    expectIncreasing(frames.filter((f) => f.type === 'message').map((f) => f.seq as number));
    // It missed seqs and was sent fewer messages than were published.
    expect(frames.filter((f) => f.type === 'message').length).toBeLessThan(published.length);

    // The member that kept up got every message, in order.
    await healthy.waitForMessages(room, published.length, 30_000);
    expect(healthy.messages(room).map((f) => f.seq)).toEqual(published.map((p) => p.seq));
    expect(await metric('switchboard_catchups_total', 'policy="conflate"')).toBeGreaterThanOrEqual(1);
    healthy.close();
    pub.close();
    slow.socket.destroy();
  }, 120_000);
});

describe('conflate, Pusher protocol', () => {
  it('a pusher-js-shaped subscriber that stops reading keeps its connection and ends with the newest event of each key, then every new one', async () => {
    const room = 'tick-pusher';
    // sb_resume=1: events carry seq, so the test can check order and duplicates (stock clients get the same events without).
    const raw = await openRawWs(node.port, '/app/pkey?protocol=7&client=js&version=8.4.0&sb_resume=1', { keepText: true });
    const parsed: Frame[] = [];
    const frames = (): Frame[] => {
      for (let i = parsed.length; i < raw.texts.length; i++) parsed.push(JSON.parse(raw.texts[i]!) as Frame);
      return parsed;
    };
    await waitFor(() => frames().some((f) => f.event === 'pusher:connection_established'), 10_000, 'pusher connection');
    raw.sendText(JSON.stringify({ event: 'pusher:subscribe', data: { channel: room } }));
    await waitFor(() => frames().some((f) => f.event === 'pusher_internal:subscription_succeeded'), 10_000, 'subscribed');
    const events = (): Array<{ seq: number; n: number; key: string }> =>
      frames()
        .filter((f) => f.channel === room && typeof f.seq === 'number')
        .map((f) => {
          const data = JSON.parse(f.data as string) as { n: number };
          return { seq: f.seq as number, n: data.n, key: `k${data.n % 10}` };
        });
    const pub = await TestClient.connect(node.wsUrl, { user: 'pub-p' });
    await pub.request({ type: 'join', room });

    raw.pause();
    const published = await publishUntilBehind(pub, room, 'conflate', 10);
    published.push(...(await publish(pub, room, published.length, 57, 10, 100)));
    raw.resume();
    await waitFor(() => events().at(-1)?.seq === published.at(-1)!.seq, 30_000, 'the newest event');
    const after = await publish(pub, room, published.length, 20, 10, 100);
    published.push(...after);
    await waitFor(() => events().at(-1)?.seq === published.at(-1)!.seq, 10_000, 'the new events');
    expect(raw.closeFrame()).toBeNull();

    const got = events();
    expectIncreasing(got.map((e) => e.seq));
    // It was sent fewer events than were published (conflated), no `catchup` frame (not a Pusher event)...
    expect(got.length).toBeLessThan(published.length);
    expect(frames().some((f) => f.event === 'catchup' || f.type === 'catchup')).toBe(false);
    // ...every event it got is the one published at that seq...
    const bySeq = new Map(published.map((p) => [p.seq, p]));
    for (const e of got) expect(e.n).toBe(bySeq.get(e.seq)!.n);
    // ...it ends with the newest value of every key, and it got every event published after it read again.
    const lastOfKey = (list: Array<{ key: string; n: number }>): Map<string, number> => new Map(list.map((e) => [e.key, e.n]));
    expect(lastOfKey(got)).toEqual(lastOfKey(published));
    const gotSeqs = new Set(got.map((e) => e.seq));
    for (const p of after) expect(gotSeqs.has(p.seq), `seq ${p.seq} after the catch-up`).toBe(true);
    pub.close();
    raw.socket.destroy();
  }, 120_000);
});

describe('drop', () => {
  it('a member that stops reading gets a skipped frame naming exactly the seqs it missed, which history fills, then the newest and every new message', async () => {
    const room = 'drop-a';
    const slow = await slowMember('slow-d', room);
    const pub = await TestClient.connect(node.wsUrl, { user: 'pub-d' });
    await pub.request({ type: 'join', room });

    slow.pause();
    const published = await publishUntilBehind(pub, room, 'drop', 1);
    published.push(...(await publish(pub, room, published.length, 30, 1, 100)));
    slow.resume();
    const newest = published.at(-1)!.seq;
    await waitFor(() => messagesOf(slow.frames(), room).at(-1)?.seq === newest, 30_000, 'the newest message');
    published.push(...(await publish(pub, room, published.length, 10, 1, 100)));
    await waitFor(() => messagesOf(slow.frames(), room).at(-1)?.seq === published.at(-1)!.seq, 10_000, 'the new messages');
    expect(slow.closeFrame()).toBeNull();

    // Every message in turn while it keeps up; each skipped frame names exactly the seqs it was not sent, and the
    // newest message at that time follows it.
    const frames = slow.frames().filter((f) => f.room === room && (f.type === 'message' || f.type === 'skipped'));
    let last = 0;
    const missed: number[] = [];
    const skips: Frame[] = [];
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.type === 'message') {
        expect(f.seq, 'a message in turn').toBe(last + 1);
        last = f.seq as number;
        continue;
      }
      skips.push(f);
      expect(f.from).toBe(last + 1);
      expect(f.to as number).toBeGreaterThanOrEqual(f.from as number);
      for (let seq = f.from as number; seq <= (f.to as number); seq++) missed.push(seq);
      expect(frames[i + 1]?.seq, 'the newest message follows the skipped frame').toBe((f.to as number) + 1);
      last = f.to as number;
    }
    expect(skips.length).toBeGreaterThanOrEqual(1);
    expect(last).toBe(published.at(-1)!.seq);
    // History holds exactly the seqs it was told it missed.
    const fromHistory: number[] = [];
    for (const f of skips) {
      let after = (f.from as number) - 1;
      while (after < (f.to as number)) {
        const page = await pub.request({ type: 'history', room, after, limit: Math.min(1000, (f.to as number) - after) });
        const seqs = (page.messages as { seq: number }[]).map((m) => m.seq);
        expect(seqs.length).toBeGreaterThan(0);
        fromHistory.push(...seqs);
        after = seqs.at(-1)!;
      }
    }
    expect(fromHistory).toEqual(missed);
    const received = frames.filter((f) => f.type === 'message').map((f) => f.seq as number);
    expect([...received, ...missed].sort((x, y) => x - y)).toEqual(published.map((p) => p.seq));
    pub.close();
    slow.socket.destroy();
  }, 120_000);
});

describe('publish cap', () => {
  it('a room over its publishes per second is refused rate_limited on every transport; refusals use up no seq', async () => {
    const pub = await TestClient.connect(node.wsUrl, { user: 'pub-c' });
    await pub.request({ type: 'join', room: 'capped' });
    const replies = await Promise.all(Array.from({ length: 30 }, (_, n) => pub.request({ type: 'publish', room: 'capped', data: n })));
    const acks = replies.filter((r) => r.type === 'ack');
    const refused = replies.filter((r) => r.type === 'error');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r).toMatchObject({ code: 'rate_limited', retryable: true, room: 'capped' });
    // 30 pipelined publishes span at most a few one-second windows of 5
    expect(acks.length).toBeGreaterThanOrEqual(5);
    expect(acks.length).toBeLessThan(30);
    expect(acks.map((a) => a.seq).sort((a, b) => (a as number) - (b as number))).toEqual(acks.map((_, i) => i + 1));

    let status = 0;
    await waitFor(
      async () => {
        const res = await fetch(`${node.url}/api/publish`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ room: 'capped', data: 'http' }),
        });
        status = res.status;
        if (res.status === 429) expect(((await res.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
        return res.status === 429;
      },
      10_000,
      'an HTTP publish refused 429',
    );
    expect(status).toBe(429);
    // A room without a cap is not limited.
    await pub.request({ type: 'join', room: 'uncapped' });
    const free = await Promise.all(Array.from({ length: 30 }, (_, n) => pub.request({ type: 'publish', room: 'uncapped', data: n })));
    expect(free.every((r) => r.type === 'ack')).toBe(true);
    pub.close();
  }, 60_000);
});
