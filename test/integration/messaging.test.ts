/**
 * One real node process (dev mode, embedded engines) and real WebSocket clients over loopback:
 * rooms, publish/ack, ordering, idempotency, recovery, history, presence, direct messages, HTTP publish.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

let node: NodeProcess;
const clients: TestClient[] = [];

async function client(user: string): Promise<TestClient> {
  const c = await TestClient.connect(node.wsUrl, { user });
  clients.push(c);
  return c;
}

async function httpPublish(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${node.url}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const seqs = (frames: Frame[]): number[] => frames.map((f) => f.seq as number);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

beforeAll(async () => {
  node = await startNodeProcess({ args: ['--presence-diff-ms', '50'] });
});

afterAll(async () => {
  for (const c of clients) c.close();
  expect(await node.stop()).toBe(0);
});

describe('rooms and publish', () => {
  it('two clients exchange room messages with contiguous seqs from 1', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    const ja = await alice.request({ type: 'join', room: 'lobby' });
    expect(ja).toMatchObject({ type: 'joined', room: 'lobby', seq: 0, recovery: 'none', missed: 0 });
    expect(typeof ja.epoch).toBe('string');
    await bob.request({ type: 'join', room: 'lobby' });
    const ack1 = await alice.request({ type: 'publish', room: 'lobby', data: { text: 'hi bob' } });
    expect(ack1).toMatchObject({ type: 'ack', room: 'lobby', seq: 1, epoch: ja.epoch, duplicate: false });
    const ack2 = await bob.request({ type: 'publish', room: 'lobby', data: { text: 'hi alice' } });
    expect(ack2).toMatchObject({ seq: 2 });
    for (const c of [alice, bob]) {
      const msgs = await c.waitForMessages('lobby', 2);
      expect(msgs.map((m) => [m.seq, m.from, (m.data as { text: string }).text])).toEqual([
        [1, 'alice', 'hi bob'],
        [2, 'bob', 'hi alice'],
      ]);
      expect(msgs[0]!.epoch).toBe(ja.epoch);
      expect(typeof msgs[0]!.ts).toBe('number');
    }
  });

  it('concurrent publishers: every member sees one gap-free order, each message once', async () => {
    const members = await Promise.all(['m1', 'm2', 'm3'].map(client));
    for (const m of members) await m.request({ type: 'join', room: 'race' });
    const pubs = await Promise.all(['p1', 'p2'].map(client));
    for (const p of pubs) await p.request({ type: 'join', room: 'race' });
    const N = 150;
    const acks = await Promise.all(pubs.flatMap((p, pi) => range(1, N).map((i) => p.request({ type: 'publish', room: 'race', data: { p: pi, i } }))));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(2 * N);
    for (const m of [...members, ...pubs]) {
      const msgs = await m.waitForMessages('race', 2 * N);
      expect(seqs(msgs)).toEqual(range(1, 2 * N));
      // each publisher's own messages in its own order
      for (const pi of [0, 1]) {
        const mine = msgs.filter((f) => (f.data as { p: number }).p === pi).map((f) => (f.data as { i: number }).i);
        expect(mine).toEqual(range(1, N));
      }
    }
  });

  it('a repeated idempotency id is stored and delivered once and acked with the first seq', async () => {
    const a = await client('idem-a');
    const watcher = await client('idem-w');
    await a.request({ type: 'join', room: 'idem' });
    await watcher.request({ type: 'join', room: 'idem' });
    const first = await a.request({ type: 'publish', room: 'idem', data: 'x', idem: 'k-1' });
    const again = await a.request({ type: 'publish', room: 'idem', data: 'x-retry', idem: 'k-1' });
    const other = await a.request({ type: 'publish', room: 'idem', data: 'y', idem: 'k-2' });
    expect(first).toMatchObject({ seq: 1, duplicate: false });
    expect(again).toMatchObject({ seq: 1, duplicate: true });
    expect(other).toMatchObject({ seq: 2, duplicate: false });
    await watcher.waitForMessages('idem', 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(watcher.messages('idem').map((m) => m.data)).toEqual(['x', 'y']);
    const hist = await watcher.request({ type: 'history', room: 'idem' });
    expect((hist.messages as Frame[]).map((m) => m.data)).toEqual(['x', 'y']);
  });

  it('publishing to a room not joined is refused', async () => {
    const c = await client('nj');
    const err = await c.request({ type: 'publish', room: 'elsewhere', data: 1 });
    expect(err).toMatchObject({ type: 'error', code: 'not_joined', retryable: false, room: 'elsewhere' });
  });

  it('leave stops delivery', async () => {
    const a = await client('leaver');
    const p = await client('leave-pub');
    await a.request({ type: 'join', room: 'leaving' });
    await p.request({ type: 'join', room: 'leaving' });
    await p.request({ type: 'publish', room: 'leaving', data: 1 });
    await a.waitForMessages('leaving', 1);
    expect(await a.request({ type: 'leave', room: 'leaving' })).toMatchObject({ type: 'left', room: 'leaving' });
    await p.request({ type: 'publish', room: 'leaving', data: 2 });
    await p.waitForMessages('leaving', 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.messages('leaving')).toHaveLength(1);
  });
});

describe('recovery and history', () => {
  it('rejoining with since recovers exactly the missed messages, in order, once, before live ones', async () => {
    const pub = await client('rec-pub');
    await pub.request({ type: 'join', room: 'rec' });
    const sub = await client('rec-sub');
    await sub.request({ type: 'join', room: 'rec' });
    for (let i = 1; i <= 5; i++) await pub.request({ type: 'publish', room: 'rec', data: i });
    const got = await sub.waitForMessages('rec', 5);
    const last = got[got.length - 1]!;
    sub.close();
    for (let i = 6; i <= 12; i++) await pub.request({ type: 'publish', room: 'rec', data: i });
    const back = await client('rec-sub');
    const joined = await back.request({ type: 'join', room: 'rec', since: { seq: last.seq, epoch: last.epoch } });
    expect(joined).toMatchObject({ type: 'joined', recovery: 'recovered', missed: 7, seq: 12 });
    await pub.request({ type: 'publish', room: 'rec', data: 13 });
    const msgs = await back.waitForMessages('rec', 8);
    await new Promise((r) => setTimeout(r, 100));
    expect(seqs(back.messages('rec'))).toEqual(range(6, 13));
    expect(back.messages('rec').map((m) => m.data)).toEqual(range(6, 13));
    // the joined frame precedes the recovered messages
    expect(back.frames.indexOf(joined)).toBeLessThan(back.frames.indexOf(msgs[0]!));
  });

  it('a wrong epoch gets recovery "reset"', async () => {
    const c = await client('epoch');
    const j = await c.request({ type: 'join', room: 'rec', since: { seq: 3, epoch: 'not-the-epoch' } });
    expect(j).toMatchObject({ recovery: 'reset', missed: 0 });
  });

  it('history pages by seq, over WebSocket and HTTP', async () => {
    const c = await client('hist');
    await c.request({ type: 'join', room: 'hist' });
    for (let i = 1; i <= 30; i++) await c.request({ type: 'publish', room: 'hist', data: i });
    const newest = await c.request({ type: 'history', room: 'hist', limit: 10 });
    expect(seqs(newest.messages as Frame[])).toEqual(range(21, 30));
    expect(newest.more).toBe(true);
    const older = await c.request({ type: 'history', room: 'hist', before: 21, limit: 10 });
    expect(seqs(older.messages as Frame[])).toEqual(range(11, 20));
    const res = await fetch(`${node.url}/api/rooms/hist/history?before=11&limit=20`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { messages: Frame[]; more: boolean };
    expect(seqs(body.messages)).toEqual(range(1, 10));
    expect(body.more).toBe(false);
    const after = (await (await fetch(`${node.url}/api/rooms/hist/history?after=25`)).json()) as { messages: Frame[] };
    expect(seqs(after.messages)).toEqual(range(26, 30));
  });
});

describe('presence', () => {
  it('lists members, sends batched diffs, and records lastSeen on leave', async () => {
    const a = await client('pres-a');
    await a.request({ type: 'join', room: 'pres' });
    const b = await client('pres-b');
    await b.request({ type: 'join', room: 'pres' });
    const diff = await a.waitFor((f) => f.type === 'presence.diff' && (f.joined as { user: string }[]).some((j) => j.user === 'pres-b'));
    expect(diff.room).toBe('pres');
    const list = await a.request({ type: 'presence', room: 'pres' });
    const users = (list.members as { user: string; online: boolean; connections: number }[])
      .filter((m) => m.online)
      .map((m) => m.user)
      .sort();
    expect(users).toEqual(['pres-a', 'pres-b']);
    const before = Date.now();
    b.close();
    const left = await a.waitFor((f) => f.type === 'presence.diff' && (f.left as { user: string }[]).some((l) => l.user === 'pres-b'));
    expect((left.left as { lastSeen: number }[])[0]!.lastSeen).toBeGreaterThanOrEqual(before - 1000);
    const http = (await (await fetch(`${node.url}/api/rooms/pres/presence`)).json()) as { members: { user: string; online: boolean; lastSeen: number }[] };
    const bEntry = http.members.find((m) => m.user === 'pres-b');
    expect(bEntry).toMatchObject({ online: false });
    expect(bEntry!.lastSeen).toBeGreaterThanOrEqual(before - 1000);
  });
});

describe('HTTP publish', () => {
  it('publishes to a room (sequenced, acked) and to all connections of a user', async () => {
    const u1 = await client('carol');
    const u2 = await client('carol');
    const other = await client('dave');
    await u1.request({ type: 'join', room: 'http-room' });
    const r = await httpPublish({ room: 'http-room', data: { text: 'from backend' }, idem: 'b-1' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ room: 'http-room', seq: 1, duplicate: false });
    const again = await httpPublish({ room: 'http-room', data: { text: 'from backend' }, idem: 'b-1' });
    expect(again.json).toMatchObject({ seq: 1, duplicate: true });
    const [m] = await u1.waitForMessages('http-room', 1);
    expect(m).toMatchObject({ from: 'server', data: { text: 'from backend' } });
    const d = await httpPublish({ user: 'carol', data: { note: 'direct' } });
    expect(d.status).toBe(202);
    for (const c of [u1, u2]) {
      const f = await c.waitFor((x) => x.type === 'direct');
      expect(f).toMatchObject({ from: 'server', data: { note: 'direct' } });
    }
    await new Promise((r2) => setTimeout(r2, 100));
    expect(other.frames.some((f) => f.type === 'direct')).toBe(false);
  });
});

describe('fan-out', () => {
  it('coalesces a burst into fewer socket writes than deliveries', async () => {
    const members = await Promise.all(range(1, 20).map((i) => client(`fan-${i}`)));
    for (const m of members) await m.request({ type: 'join', room: 'fan' });
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${node.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
      return Number(line?.split(' ').pop() ?? NaN);
    };
    const writes0 = await metric('switchboard_socket_writes_total');
    const delivered0 = await metric('switchboard_messages_delivered_total');
    // 100 publishes pipelined on one connection: they are sequenced and committed in a few group
    // commits, so each member's frames of one commit leave in one socket write.
    const pub = await client('fan-pub');
    await pub.request({ type: 'join', room: 'fan' });
    await Promise.all(range(1, 100).map((i) => pub.request({ type: 'publish', room: 'fan', data: i })));
    for (const m of members) expect(seqs(await m.waitForMessages('fan', 100))).toEqual(range(1, 100));
    const writes = (await metric('switchboard_socket_writes_total')) - writes0;
    const delivered = (await metric('switchboard_messages_delivered_total')) - delivered0;
    expect(delivered).toBe(2100); // 20 members + the publisher
    // 100 messages x 20 members; coalescing must write far fewer than one write per delivery
    expect(writes).toBeLessThan(delivered / 2);
  });
});

describe('operations endpoints', () => {
  it('/healthz and /readyz report ok with their checks', async () => {
    const h = await fetch(`${node.url}/healthz`);
    expect(h.status).toBe(200);
    const r = await fetch(`${node.url}/readyz`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(body.status).toBe('ready');
    expect(Object.keys(body.checks).sort()).toEqual(['accepting', 'backplane', 'durableLog', 'history', 'presence', 'roomLog']);
    expect(Object.values(body.checks).every((c) => c.ok)).toBe(true);
  });

  it('/metrics is valid Prometheus text with the gateway figures', async () => {
    await new Promise((r) => setTimeout(r, 1100)); // the rooms gauge is sampled every second
    const text = await (await fetch(`${node.url}/metrics`)).text();
    const samples = new Map<string, number>();
    const typed = new Set<string>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (meta) {
        if (meta[1] === 'TYPE') {
          expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
          typed.add(meta[2]!);
        }
        continue;
      }
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
      expect(m, `not a Prometheus sample line: ${line}`).not.toBeNull();
      samples.set(m![1]! + (m![2] ?? ''), Number(m![3]));
    }
    const names = [...samples.keys()].map((k) => k.split('{')[0]!);
    for (const required of [
      'switchboard_connections',
      'switchboard_rooms',
      'switchboard_frames_in_total',
      'switchboard_messages_delivered_total',
      'switchboard_messages_published_total',
      'switchboard_publish_to_deliver_seconds_bucket',
      'switchboard_slow_consumer_disconnects_total',
      'switchboard_heartbeat_timeouts_total',
      'switchboard_errors_total',
      'switchboard_admission_total',
      'switchboard_process_resident_memory_bytes',
      'switchboard_nodejs_heap_size_used_bytes',
      'switchboard_history_lag_messages',
    ]) {
      expect(names, required).toContain(required);
    }
    const value = (name: string): number => [...samples].filter(([k]) => k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0);
    expect(value('switchboard_connections')).toBeGreaterThan(0);
    expect(value('switchboard_rooms')).toBeGreaterThan(0);
    expect(value('switchboard_messages_delivered_total')).toBeGreaterThan(0);
    expect(value('switchboard_publish_to_deliver_seconds_count')).toBeGreaterThan(0);
    expect(typed.has('switchboard_publish_to_deliver_seconds')).toBe(true);
  });
});

describe('recovery under load', () => {
  it('a rejoin with since while messages keep arriving gets every message once, in order, with no gap between recovered and live', async () => {
    const pub = await client('live-pub');
    await pub.request({ type: 'join', room: 'busy' });
    const sub = await client('live-sub');
    await sub.request({ type: 'join', room: 'busy' });
    let stop = false;
    let sent = 0;
    const publishing = (async () => {
      while (!stop) {
        await Promise.all(range(1, 10).map(() => pub.request({ type: 'publish', room: 'busy', data: ++sent })));
      }
    })();
    await sub.waitForMessages('busy', 30);
    const last = sub.messages('busy').at(-1)!;
    sub.close();
    await new Promise((r) => setTimeout(r, 150)); // messages published while away
    const back = await client('live-sub');
    const joined = await back.request({ type: 'join', room: 'busy', since: { seq: last.seq, epoch: last.epoch } });
    expect(joined.recovery).toBe('recovered');
    // Keep publishing until a live message (published after the join) has arrived.
    await back.waitFor((f) => f.type === 'message' && f.room === 'busy' && (f.seq as number) > (joined.seq as number), 10_000, 'a live message after the join');
    stop = true;
    await publishing;
    const total = sent;
    const msgs = await back.waitForMessages('busy', total - (last.seq as number));
    await new Promise((r) => setTimeout(r, 100));
    expect(seqs(back.messages('busy'))).toEqual(range((last.seq as number) + 1, total));
    expect(msgs.length).toBeGreaterThan(joined.missed as number); // some arrived live after the recovered ones
  });
});
