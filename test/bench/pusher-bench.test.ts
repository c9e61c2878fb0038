/**
 * The Pusher scenario's own pieces (not a benchmark: no figure is asserted): frame classification and the
 * bench's data strings as the Pusher load generator reads them, order checks over several publishing
 * streams, HTTP API signing against the `pusher` SDK's, the churn's presence checks, and a tiny run of the
 * Pusher load generator against a Switchboard node whose delivery count is known exactly.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';

const lib = (name: string): string => new URL(`../../bench/lib/${name}`, import.meta.url).href;
const frames = await import(lib('pusher-frames.mjs'));
const {
  benchData,
  benchDataOf,
  checkMemberEvents,
  compareMembers,
  PresenceTruth,
  pusherFrameKind,
  pusherPath,
  signedQuery,
  StreamSeqs,
  subscribeFrame,
  v1BenchData,
} = frames;
const { openMembers, closeLoad } = await import(lib('load.mjs'));
const { measureWindow, openPublisher } = await import(lib('measure.mjs'));
const { startSystem } = await import(lib('systems.mjs'));
const { stopAll } = await import(lib('procs.mjs'));

afterAll(async () => {
  await stopAll();
});

const frame = (o: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify(o));

describe('Pusher frames', () => {
  it('speaks as pusher-js 8 does: path, public subscribe with an empty auth, presence with channel_data', () => {
    expect(pusherPath('k1')).toBe('/app/k1?protocol=7&client=js&version=8.6.0&flash=false');
    expect(JSON.parse(subscribeFrame('hot'))).toEqual({ event: 'pusher:subscribe', data: { auth: '', channel: 'hot' } });
    expect(JSON.parse(subscribeFrame('presence-x', 'k:sig', '{"user_id":"u"}'))).toEqual({
      event: 'pusher:subscribe',
      data: { auth: 'k:sig', channel_data: '{"user_id":"u"}', channel: 'presence-x' },
    });
  });

  it('classifies server frames by event name, inside a chunk holding several frames', () => {
    const parts = [
      frame({ event: 'pusher:connection_established', data: '{"socket_id":"1.2","activity_timeout":120}' }),
      frame({ event: 'pusher_internal:subscription_succeeded', channel: 'hot', data: '{}' }),
      frame({ event: 'bench', channel: 'hot', data: benchData(2, 41, 1700000000123.5) }),
      frame({ event: 'pusher:ping', data: '{}' }),
      frame({ channel: 'hot', event: 'bench', data: 'S0.1|T5|x' }), // another key order: parsed
      frame({ event: 'pusher_internal:member_removed', channel: 'presence-x', data: '{"user_id":"u"}' }),
      frame({ event: 'other-event', channel: 'hot', data: 'x' }),
    ];
    const chunk = Buffer.concat([Buffer.from('..'), ...parts]);
    const kinds: string[] = [];
    let p = 2;
    for (const f of parts) {
      kinds.push(pusherFrameKind(chunk, p, f.length, 'bench'));
      p += f.length;
    }
    expect(kinds).toEqual(['established', 'subscribed', 'message', 'ping', 'message', 'memberRemoved', 'other']);
  });

  it('reads stream, number and clock from the data, within the frame only', () => {
    const a = frame({ event: 'bench', channel: 'hot', data: benchData(3, 17, 1234.5, 100) });
    const b = frame({ event: 'message', channel: 'hot', data: 'T99.25|xxxx' }); // the v1 publisher's data
    const c = frame({ event: 'bench', channel: 'hot', data: 'no bench data' });
    const d = frame({ event: 'bench', channel: 'hot', data: 'S4.5|T77|y' });
    const chunk = Buffer.concat([a, b, c, d]);
    expect(JSON.parse(a.toString()).data).toHaveLength(100);
    expect(benchDataOf(chunk, 0, a.length)).toEqual({ stream: 3, n: 17, at: 1234.5 });
    expect(benchDataOf(chunk, a.length, b.length)).toEqual({ stream: -1, n: -1, at: 99.25 });
    // Frame c has no bench data: the search must not find frame d's, which follows it in the chunk.
    expect(benchDataOf(chunk, a.length + b.length, c.length)).toBeNull();
    expect(benchDataOf(chunk, a.length + b.length + c.length, d.length)).toEqual({ stream: 4, n: 5, at: 77 });
    expect(benchDataOf(chunk, 0, a.length, false)).toEqual({ stream: 3, n: 17, at: NaN }); // members that do not sample latency
    expect(v1BenchData(2, 9, 5.5, 40)).toBe(`T5.500|S2.9|${'x'.repeat(28)}`); // the clock first, where loadgen.mjs reads it
  });

  it('checks order per member and per publishing stream', () => {
    const s = new StreamSeqs(2, 3);
    for (const [st, n] of [
      [0, 1],
      [1, 7], // first number on stream 1: not a gap
      [0, 2],
      [1, 8],
      [0, 4], // gap of 1
      [2, 1],
      [0, 4], // duplicate
      [0, 3], // reordered
    ])
      s.add(0, st, n);
    for (const n of [1, 2, 3]) s.add(1, 0, n);
    s.add(1, 9, 1); // no such stream
    expect(s.summary()).toEqual({ dupsOrReordered: 3, gaps: 1, gapSeqs: 1 });
    s.reset();
    expect(s.summary()).toEqual({ dupsOrReordered: 0, gaps: 0, gapSeqs: 0 });
  });
});

describe('HTTP API signing', () => {
  it('signs a trigger exactly as the pusher SDK does', async () => {
    const { createSignedQueryString } = (await import('pusher/lib/requests.js' as string)) as {
      createSignedQueryString: (token: unknown, request: { method: string; path: string; body?: string }) => string;
    };
    const Token = ((await import('pusher/lib/token.js' as string)) as { default: new (key: string, secret: string) => unknown }).default;
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    try {
      const body = JSON.stringify({ name: 'bench', channel: 'hot', data: 'S0.1|T1|x' });
      const sdk = createSignedQueryString(new Token('k1', 'secret-123'), { method: 'POST', path: '/apps/a1/events', body });
      expect(signedQuery({ key: 'k1', secret: 'secret-123', method: 'POST', path: '/apps/a1/events', body })).toBe(sdk);
      const get = createSignedQueryString(new Token('k1', 'secret-123'), { method: 'GET', path: '/apps/a1/channels' });
      expect(signedQuery({ key: 'k1', secret: 'secret-123', method: 'GET', path: '/apps/a1/channels' })).toBe(get);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('presence checks of the churn', () => {
  it('compares a node’s member list with the users subscribed', () => {
    expect(compareMembers(['a', 'b', 'c'], ['c', 'a', 'b'])).toMatchObject({ ok: true, missing: [], extra: [] });
    expect(compareMembers(['a', 'b', 'c'], ['a', 'd', 'd'])).toMatchObject({ ok: false, missing: ['b', 'c'], extra: ['d'], listed: 2, expected: 3 });
  });

  it('counts join and leave transitions per user, not connections', () => {
    const t = new PresenceTruth();
    t.opened('a'); // join
    t.opened('a'); // second tab: no transition
    t.closed('a'); // one tab left: no transition
    t.opened('b'); // join
    t.closed('a'); // leave
    t.opened('a'); // join again
    expect(t.transitions('a')).toEqual({ joins: 2, leaves: 1 });
    expect(t.transitions('b')).toEqual({ joins: 1, leaves: 0 });
    expect(t.present().sort()).toEqual(['a', 'b']);
    expect(() => t.closed('c')).toThrow(/did not have/);
  });

  it('finds duplicate, missed and out-of-turn member events, and a wrong final view', () => {
    const t = new PresenceTruth();
    t.opened('a');
    t.closed('a');
    t.opened('a');
    t.opened('b');
    const right = checkMemberEvents(
      [
        ['added', 'a'],
        ['removed', 'a'],
        ['added', 'b'],
        ['added', 'a'],
      ],
      t,
    );
    expect(right).toMatchObject({ ok: true, dupAdded: 0, dupRemoved: 0, missedAdded: 0, missedRemoved: 0, outOfTurn: 0, finalView: { missing: 0, extra: 0 } });
    const wrong = checkMemberEvents(
      [
        ['added', 'a'],
        ['added', 'a'], // a duplicate member_added (per connection, or per node)
        ['removed', 'a'],
        ['removed', 'b'], // b never had a member_added; b's removed is a duplicate of nothing
      ],
      t,
    );
    expect(wrong).toMatchObject({ ok: false, dupAdded: 0, missedAdded: 1, dupRemoved: 1, missedRemoved: 0, outOfTurn: 2 });
    expect(wrong.finalView).toEqual({ missing: 2, extra: 0 }); // the observer thinks a and b are gone
  });
});

describe('a tiny Pusher hot-channel run on Switchboard', () => {
  it('counts exactly triggers × subscribers, in order per HTTP stream, with no loss or duplicate', async () => {
    const app = { id: 'default', key: 'tiny-key', secret: 'tiny-secret-123' };
    const sys = await startSystem('switchboard', {
      extra: ['--admission-rate', '10000', '--admission-burst', '10000', '--pusher-apps', JSON.stringify([app])],
    });
    const common = { proto: 'pusher', key: app.key, streams: 4, port: sys.port, room: 'tiny', sampleEvery: 1, concurrency: 10 };
    const opened = await openMembers({ n: 12, procs: 2, ...common });
    const pub = await openPublisher({ ...common, appId: app.id, secret: app.secret, mode: 'flat' });
    try {
      expect(opened.joined).toBe(12);
      const w = await measureWindow({ gens: opened.gens, publishers: [pub], members: 12, durationMs: 1000, serverPids: sys.pids, drainMaxMs: 20000 });
      expect(w.publishErrors).toBe(0);
      expect(w.acked).toBe(w.published);
      expect(w.acked).toBeGreaterThanOrEqual(4);
      expect(w.delivered).toBe(w.acked * 12);
      expect(w.lost).toBe(0);
      expect(w.extra).toBe(0);
      expect(w.seq).toEqual({ dupsOrReordered: 0, gaps: 0, gapSeqs: 0 });
      expect(w.settled).toBe('complete');
      expect(w.latencyMs.n).toBeGreaterThan(0);
    } finally {
      await closeLoad([...opened.gens, pub]);
      await sys.stop();
    }
  }, 120_000);
});
