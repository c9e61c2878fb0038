/** LocalRoom: ordered delivery, gap hold/repair/skip, pending members, encode-once, presence batching. */
import { afterEach, describe, expect, it } from 'vitest';
import type { RoomMessage, RoomRef } from '../../src/engines/types.js';
import { LocalRoom, V1_CODEC, type Membership, type RoomCodec, type RoomHooks, type RoomMember } from '../../src/rooms/room.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { decodeFrame } from './ws-frames.js';

const ref: RoomRef = { tenant: 'acme', room: 'lobby' };
const EPOCH = 'E1';
const GAP_WAIT_MS = 20;
const PRESENCE_MS = 20;

function msg(seq: number, epoch = EPOCH): RoomMessage {
  return { tenant: ref.tenant, room: ref.room, seq, epoch, from: 'alice', ts: 1_700_000_000_000 + seq, data: { n: seq } };
}

interface TestMember {
  readonly membership: Membership;
  readonly frames: Buffer[];
  /** Decoded frames. */
  decoded(): Array<Record<string, unknown>>;
  /** Seqs of the `message` frames received, in order. */
  seqs(): number[];
}

function member(
  room: LocalRoom,
  opts: { pending?: boolean; skipUpTo?: number; leaving?: boolean; conn?: Pick<RoomMember, 'behind' | 'whenDrained'> } = {},
): TestMember {
  const frames: Buffer[] = [];
  const membership: Membership = {
    conn: { codec: V1_CODEC, send: (frame: Buffer) => frames.push(frame), leaving: opts.leaving === true, ...opts.conn },
    local: room,
    pending: opts.pending === true ? [] : null,
    skipUpTo: opts.skipUpTo ?? 0,
  };
  room.members.add(membership);
  const decoded = (): Array<Record<string, unknown>> => frames.map((f) => decodeFrame(f));
  return {
    membership,
    frames,
    decoded,
    seqs: () =>
      decoded()
        .filter((f) => f.type === 'message')
        .map((f) => f.seq as number),
  };
}

interface HookLog {
  readonly hooks: RoomHooks;
  readonly fetches: Array<[number, number]>;
  readonly gaps: Array<'repaired' | 'skipped' | 'failed'>;
  readonly delivered: Array<[number, number]>;
}

function hooks(fetchRange: (from: number, to: number) => Promise<RoomMessage[]> = async () => []): HookLog {
  const fetches: Array<[number, number]> = [];
  const gaps: Array<'repaired' | 'skipped' | 'failed'> = [];
  const delivered: Array<[number, number]> = [];
  return {
    fetches,
    gaps,
    delivered,
    hooks: {
      fetchRange: (r, from, to) => {
        expect(r).toEqual(ref);
        fetches.push([from, to]);
        return fetchRange(from, to);
      },
      onDelivered: (m, members) => delivered.push([m.seq, members]),
      onGap: (result) => gaps.push(result),
    },
  };
}

const rooms: LocalRoom[] = [];
function newRoom(h: HookLog, gapWaitMs = GAP_WAIT_MS, presenceMs = PRESENCE_MS): LocalRoom {
  const room = new LocalRoom(ref, h.hooks, gapWaitMs, presenceMs);
  rooms.push(room);
  return room;
}

afterEach(() => {
  for (const r of rooms.splice(0)) r.close();
});

describe('LocalRoom ordered delivery', () => {
  it('delivers in-order messages to every member immediately, as message frames', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    const b = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    for (const s of [1, 2, 3]) room.accept(msg(s));
    expect(a.seqs()).toEqual([1, 2, 3]);
    expect(b.seqs()).toEqual([1, 2, 3]);
    expect(a.decoded()[0]).toEqual({ type: 'message', room: 'lobby', seq: 1, epoch: EPOCH, from: 'alice', ts: 1_700_000_000_001, data: { n: 1 } });
    expect(a.decoded()[0]).not.toHaveProperty('tenant');
    expect(h.delivered).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
    ]);
    expect(room.position()).toEqual({ seq: 3, epoch: EPOCH });
  });

  it('reorders out-of-order arrivals (3, 1, 2 → 1, 2, 3) without fetching', async () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(3));
    expect(a.seqs()).toEqual([]);
    room.accept(msg(1));
    expect(a.seqs()).toEqual([1]);
    room.accept(msg(2));
    expect(a.seqs()).toEqual([1, 2, 3]);
    // The gap closed by itself: no repair fetch after gapWaitMs, no gap reported.
    await sleep(GAP_WAIT_MS * 3);
    expect(h.fetches).toEqual([]);
    expect(h.gaps).toEqual([]);
    expect(a.seqs()).toEqual([1, 2, 3]);
  });

  it('drops duplicates, whether already delivered or already held', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(1));
    room.accept(msg(3));
    room.accept(msg(3));
    room.accept(msg(2));
    room.accept(msg(2));
    room.accept(msg(1));
    room.accept(msg(3));
    expect(a.seqs()).toEqual([1, 2, 3]);
    expect(h.delivered.map(([s]) => s)).toEqual([1, 2, 3]);
  });

  it('drops a late duplicate outright: no gap repair, no re-delivery later', async () => {
    const h = hooks(async () => [msg(1), msg(2)]);
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(2));
    room.accept(msg(1));
    room.accept(msg(2));
    await sleep(GAP_WAIT_MS * 4);
    expect(a.seqs()).toEqual([1, 2]);
    expect(h.fetches).toEqual([]);
    expect(h.gaps).toEqual([]);
    expect(room.position()).toEqual({ seq: 2, epoch: EPOCH });
  });

  it('drops messages at or below the start position', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 10, epoch: EPOCH });
    room.accept(msg(9));
    room.accept(msg(10));
    room.accept(msg(11));
    expect(a.seqs()).toEqual([11]);
  });

  it('holds a gap, then repairs it through hooks.fetchRange after gapWaitMs', async () => {
    const h = hooks(async (from, to) => {
      const out: RoomMessage[] = [];
      for (let s = from; s <= to; s++) out.push(msg(s));
      return out;
    });
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(4));
    room.accept(msg(5));
    expect(a.seqs()).toEqual([1]);
    expect(h.fetches).toEqual([]); // not before gapWaitMs
    await waitFor(() => a.seqs().length === 5, 2_000, 'gap repair');
    expect(a.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(h.fetches).toEqual([[2, 3]]);
    expect(h.gaps).toEqual(['repaired']);
    expect(room.position()).toEqual({ seq: 5, epoch: EPOCH });
  });

  it('waits at least gapWaitMs before fetching', async () => {
    const h = hooks(async () => [msg(2)]);
    const room = newRoom(h, 150);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    const heldAt = Date.now();
    room.accept(msg(3));
    await waitFor(() => h.fetches.length > 0, 2_000, 'fetch');
    expect(Date.now() - heldAt).toBeGreaterThanOrEqual(140);
    await waitFor(() => a.seqs().length === 3, 2_000, 'delivery');
    expect(a.seqs()).toEqual([1, 2, 3]);
  });

  it('ignores fetched messages of another epoch or already delivered', async () => {
    const h = hooks(async () => [msg(1), msg(2, 'OTHER')]);
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(3));
    await waitFor(() => h.gaps.length > 0, 2_000, 'gap outcome');
    expect(h.gaps).toEqual(['skipped']);
    expect(a.seqs()).toEqual([1, 3]);
  });

  it('skips a gap that the RoomLog cannot fill and reports onGap("skipped")', async () => {
    const h = hooks(async () => []);
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(4));
    room.accept(msg(5));
    await waitFor(() => a.seqs().length === 3, 2_000, 'skip');
    expect(a.seqs()).toEqual([1, 4, 5]);
    expect(h.fetches).toEqual([[2, 3]]);
    expect(h.gaps).toEqual(['skipped']);
    // Late arrivals of the skipped seqs are now duplicates.
    room.accept(msg(2));
    room.accept(msg(3));
    room.accept(msg(6));
    expect(a.seqs()).toEqual([1, 4, 5, 6]);
  });

  it('skips when only the tail of the gap can be fetched (never delivers out of order)', async () => {
    const h = hooks(async () => [msg(3)]);
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(4));
    await waitFor(() => a.seqs().length === 3, 2_000, 'skip');
    expect(a.seqs()).toEqual([1, 3, 4]);
    expect(h.gaps).toEqual(['skipped']);
  });

  it('reports each failed fetch (counted and logged by the node), then skips the gap when fetchRange keeps failing', async () => {
    const h = hooks(async () => {
      throw new Error('roomlog down');
    });
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(3));
    await waitFor(() => a.seqs().length === 2, 2_000, 'skip');
    expect(a.seqs()).toEqual([1, 3]);
    expect(h.gaps.at(-1)).toBe('skipped');
    expect(h.gaps.slice(0, -1).length).toBeGreaterThan(0);
    expect(new Set(h.gaps.slice(0, -1))).toEqual(new Set(['failed']));
  });

  it('repairs a second gap that opens after the first was repaired', async () => {
    const h = hooks(async (from, to) => {
      const out: RoomMessage[] = [];
      for (let s = from; s <= to; s++) out.push(msg(s));
      return out;
    });
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(2));
    await waitFor(() => a.seqs().length === 2, 2_000, 'first repair');
    room.accept(msg(5));
    await waitFor(() => a.seqs().length === 5, 2_000, 'second repair');
    expect(a.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(h.fetches).toEqual([
      [1, 1],
      [3, 4],
    ]);
    expect(h.gaps).toEqual(['repaired', 'repaired']);
  });

  it('holds messages accepted before start() and delivers them once started', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.accept(msg(2));
    room.accept(msg(1));
    room.accept(msg(3));
    expect(a.frames).toEqual([]);
    room.start({ seq: 0, epoch: EPOCH });
    expect(a.seqs()).toEqual([1, 2, 3]);
  });

  it('on start() drops held messages at or below the start position and delivers the rest', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    for (const s of [4, 5, 6, 7]) room.accept(msg(s));
    room.start({ seq: 5, epoch: EPOCH });
    expect(a.seqs()).toEqual([6, 7]);
    expect(room.position()).toEqual({ seq: 7, epoch: EPOCH });
  });

  it('does not start the gap timer before start(); after start() a gap before the held messages is repaired', async () => {
    const h = hooks(async (from, to) => {
      const out: RoomMessage[] = [];
      for (let s = from; s <= to; s++) out.push(msg(s));
      return out;
    });
    const room = newRoom(h);
    const a = member(room);
    room.accept(msg(4));
    await sleep(GAP_WAIT_MS * 3);
    expect(h.fetches).toEqual([]);
    room.start({ seq: 1, epoch: EPOCH });
    await waitFor(() => a.seqs().length === 3, 2_000, 'repair after start');
    expect(h.fetches).toEqual([[2, 3]]);
    expect(a.seqs()).toEqual([2, 3, 4]);
  });

  it('follows a new epoch when the sequence restarts at 1', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(2));
    room.accept(msg(1, 'E2'));
    room.accept(msg(2, 'E2'));
    expect(a.decoded().map((f) => `${f.epoch as string}:${f.seq as number}`)).toEqual(['E1:1', 'E1:2', 'E2:1', 'E2:2']);
    expect(room.position()).toEqual({ seq: 2, epoch: 'E2' });
  });

  it('ignores everything after close()', async () => {
    const h = hooks(async () => [msg(2)]);
    const room = newRoom(h);
    const a = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(3));
    room.close();
    room.accept(msg(2));
    room.presence({ kind: 'join', user: 'bob', at: 1 });
    await sleep(Math.max(GAP_WAIT_MS, PRESENCE_MS) * 3);
    expect(a.seqs()).toEqual([1]);
    expect(h.fetches).toEqual([]);
    expect(a.frames).toHaveLength(1);
  });
});

describe('LocalRoom members', () => {
  it('pushes [seq, frame] to a pending member instead of sending', () => {
    const h = hooks();
    const room = newRoom(h);
    const joining = member(room, { pending: true });
    const live = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(2));
    expect(joining.frames).toEqual([]);
    const pending = joining.membership.pending!;
    expect(pending.map(([seq]) => seq)).toEqual([1, 2]);
    expect(pending.map(([, f]) => decodeFrame(f).seq)).toEqual([1, 2]);
    expect(live.seqs()).toEqual([1, 2]);
    // Once the join completes (pending cleared), the member receives directly.
    joining.membership.pending = null;
    room.accept(msg(3));
    expect(joining.seqs()).toEqual([3]);
    expect(pending).toHaveLength(2);
  });

  it('does not send messages with seq <= skipUpTo (already sent by recovery)', () => {
    const h = hooks();
    const room = newRoom(h);
    const recovered = member(room, { skipUpTo: 2 });
    const other = member(room);
    room.start({ seq: 0, epoch: EPOCH });
    for (const s of [1, 2, 3, 4]) room.accept(msg(s));
    expect(recovered.seqs()).toEqual([3, 4]);
    expect(other.seqs()).toEqual([1, 2, 3, 4]);
  });

  it('encodes each message once: every member gets the same Buffer object', () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    const b = member(room);
    const c = member(room, { pending: true });
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    room.accept(msg(2));
    expect(a.frames).toHaveLength(2);
    expect(b.frames[0]).toBe(a.frames[0]);
    expect(b.frames[1]).toBe(a.frames[1]);
    expect(c.membership.pending![0]![1]).toBe(a.frames[0]);
    expect(c.membership.pending![1]![1]).toBe(a.frames[1]);
    expect(a.frames[0]).not.toBe(a.frames[1]);
  });

  it('reports onDelivered with the member count, and not at all without members', () => {
    const h = hooks();
    const room = newRoom(h);
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(1));
    expect(h.delivered).toEqual([]);
    member(room);
    member(room);
    member(room);
    room.accept(msg(2));
    expect(h.delivered).toEqual([[2, 3]]);
    expect(room.position().seq).toBe(2);
  });
});

describe('LocalRoom presence diffs', () => {
  type Diff = { type: string; room: string; joined: Array<{ user: string; at: number }>; left: Array<{ user: string; lastSeen: number }> };
  const diffs = (m: TestMember): Diff[] => m.decoded().filter((f) => f.type === 'presence.diff') as unknown as Diff[];

  it('batches joins and leaves into one presence.diff frame per presenceDiffMs', async () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    const b = member(room);
    room.presence({ kind: 'join', user: 'alice', at: 100 });
    room.presence({ kind: 'join', user: 'bob', at: 101 });
    room.presence({ kind: 'leave', user: 'carol', at: 102 });
    expect(a.frames).toEqual([]); // batched, not sent synchronously
    await waitFor(() => a.frames.length > 0, 2_000, 'presence diff');
    await sleep(PRESENCE_MS * 3);
    expect(diffs(a)).toEqual([
      {
        type: 'presence.diff',
        room: 'lobby',
        joined: [
          { user: 'alice', at: 100 },
          { user: 'bob', at: 101 },
        ],
        left: [{ user: 'carol', lastSeen: 102 }],
      },
    ]);
    expect(a.frames).toHaveLength(1);
    expect(b.frames).toHaveLength(1);
    expect(b.frames[0]).toBe(a.frames[0]);
  });

  it('a member told to reconnect elsewhere (leaving) gets messages but no presence diffs', async () => {
    const h = hooks();
    const room = newRoom(h);
    const staying = member(room);
    const leaving = member(room, { leaving: true });
    room.start({ seq: 0, epoch: EPOCH });
    room.presence({ kind: 'leave', user: 'carol', at: 300 });
    await waitFor(() => staying.frames.length > 0, 2_000, 'presence diff');
    room.accept(msg(1));
    await waitFor(() => leaving.seqs().length === 1, 2_000, 'message to the leaving member');
    expect(diffs(staying)).toHaveLength(1);
    expect(diffs(leaving)).toEqual([]);
    expect(leaving.seqs()).toEqual([1]);
  });

  it('collapses join-then-leave of one user into a leave, and leave-then-join into a join', async () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.presence({ kind: 'join', user: 'dave', at: 200 });
    room.presence({ kind: 'leave', user: 'dave', at: 201 });
    room.presence({ kind: 'leave', user: 'erin', at: 202 });
    room.presence({ kind: 'join', user: 'erin', at: 203 });
    await waitFor(() => a.frames.length > 0, 2_000, 'presence diff');
    expect(diffs(a)).toEqual([{ type: 'presence.diff', room: 'lobby', joined: [{ user: 'erin', at: 203 }], left: [{ user: 'dave', lastSeen: 201 }] }]);
  });

  it('starts a new batch after each flush', async () => {
    const h = hooks();
    const room = newRoom(h);
    const a = member(room);
    room.presence({ kind: 'join', user: 'alice', at: 1 });
    await waitFor(() => a.frames.length === 1, 2_000, 'first diff');
    room.presence({ kind: 'leave', user: 'alice', at: 2 });
    await waitFor(() => a.frames.length === 2, 2_000, 'second diff');
    await sleep(PRESENCE_MS * 3);
    expect(diffs(a).map((d) => [d.joined, d.left])).toEqual([
      [[{ user: 'alice', at: 1 }], []],
      [[], [{ user: 'alice', lastSeen: 2 }]],
    ]);
  });

  it('does not send presence diffs to pending members', async () => {
    const h = hooks();
    const room = newRoom(h);
    const live = member(room);
    const joining = member(room, { pending: true });
    room.presence({ kind: 'join', user: 'alice', at: 1 });
    await waitFor(() => live.frames.length === 1, 2_000, 'diff');
    expect(joining.frames).toEqual([]);
    expect(joining.membership.pending).toEqual([]);
  });
});

describe('LocalRoom held-message bound', () => {
  it('skips the gap and delivers at once when more than 10,000 messages wait on it', async () => {
    const fetches: Array<[number, number]> = [];
    const gaps: string[] = [];
    let delivered = 0;
    const room = new LocalRoom(
      ref,
      {
        fetchRange: async (_r, f, t) => {
          fetches.push([f, t]);
          return [];
        },
        onDelivered: () => undefined,
        onGap: (g) => gaps.push(g),
      },
      1_000,
      PRESENCE_MS,
    );
    room.members.add({
      conn: {
        codec: V1_CODEC,
        send: () => {
          delivered++;
        },
      },
      local: room,
      pending: null,
      skipUpTo: 0,
    });
    room.start({ seq: 0, epoch: EPOCH });
    for (let s = 2; s <= 10_002; s++) room.accept(msg(s));
    expect(gaps).toEqual(['skipped']);
    expect(delivered).toBe(10_001);
    await sleep(1_100);
    expect(fetches).toEqual([]);
    expect(gaps).toEqual(['skipped']);
    room.close();
  });
});

describe('LocalRoom presence at scale', () => {
  it('a diff naming more than 50 users carries counts only: one small frame per member per interval', async () => {
    const room = new LocalRoom(ref, { fetchRange: async () => [], onDelivered: () => undefined, onGap: () => undefined }, GAP_WAIT_MS, PRESENCE_MS);
    const frames: Buffer[] = [];
    room.members.add({ conn: { codec: V1_CODEC, send: (f: Buffer) => frames.push(f) }, local: room, pending: null, skipUpTo: 0 });
    room.start({ seq: 0, epoch: EPOCH });
    for (let i = 0; i < 5000; i++) room.presence({ kind: 'join', user: `user-${i}`, at: 1000 + i });
    room.presence({ kind: 'leave', user: 'someone-else', at: 2000 });
    await waitFor(() => frames.length === 1, 2000, 'one diff');
    await sleep(PRESENCE_MS * 3);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBeLessThan(200);
    expect(decodeFrame(frames[0]!)).toEqual({ type: 'presence.diff', room: ref.room, joined: [], left: [], truncated: { joined: 5000, left: 1 } });
    room.close();
  });
});

describe('LocalRoom gap give-up', () => {
  it('keeps fetching a missing seq until it exists (e.g. still being committed), then delivers in order', async () => {
    let available = false;
    const gaps: string[] = [];
    const room = new LocalRoom(
      ref,
      { fetchRange: async (_r, f) => (available ? [msg(f)] : []), onDelivered: () => undefined, onGap: (g) => gaps.push(g) },
      GAP_WAIT_MS,
      PRESENCE_MS,
      5_000,
    );
    const got: number[] = [];
    room.members.add({
      conn: { codec: V1_CODEC, send: (f: Buffer) => got.push((decodeFrame(f) as { seq: number }).seq) },
      local: room,
      pending: null,
      skipUpTo: 0,
    });
    room.start({ seq: 0, epoch: EPOCH });
    room.accept(msg(2));
    await sleep(GAP_WAIT_MS * 6);
    expect(got).toEqual([]); // waiting, not skipping
    available = true;
    await waitFor(() => got.length === 2, 3_000, 'repair');
    expect(got).toEqual([1, 2]);
    expect(gaps).toEqual(['repaired']);
    room.close();
  });
});

describe('LocalRoom with members of two protocols', () => {
  it('encodes each message once per codec, sends presence per codec (diffs only to batching codecs), skips the excepted socket and the present user', async () => {
    const room = new LocalRoom(ref, { fetchRange: async () => [], onDelivered: () => undefined, onGap: () => undefined }, GAP_WAIT_MS, PRESENCE_MS);
    let encodedOther = 0;
    const other: RoomCodec = {
      message: (m) => {
        encodedOther++;
        return Buffer.from(`other:${m.seq}`);
      },
      batchesPresence: false,
      presence: (_ref, change) => Buffer.from(`other-${change.kind}:${change.user}`),
      direct: () => Buffer.from('other-direct'),
    };
    const got = new Map<string, string[]>();
    const member = (name: string, codec: RoomCodec, extra: { socketId?: string; presenceUser?: string } = {}): void => {
      got.set(name, []);
      const conn = {
        codec,
        ...(extra.socketId !== undefined ? { socketId: extra.socketId } : {}),
        send: (f: Buffer) => got.get(name)!.push(f.toString().startsWith('other') ? f.toString() : JSON.stringify(decodeFrame(f))),
      };
      room.members.add({ conn, local: room, pending: null, skipUpTo: 0, ...(extra.presenceUser !== undefined ? { presenceUser: extra.presenceUser } : {}) });
    };
    member('v1', V1_CODEC);
    member('p1', other, { socketId: '1.1', presenceUser: 'ann' });
    member('p2', other, { socketId: '1.2' });
    // Codecs alternate in the member set: still one encoding per codec per message.
    member('v1b', V1_CODEC);
    member('p3', other, { socketId: '1.3' });
    room.start({ seq: 0, epoch: EPOCH });
    room.trackPresence([]); // the other codec's members hold a member list (as a Pusher presence subscriber does)
    room.accept(msg(1), '1.1');
    room.accept(msg(2));
    expect(encodedOther).toBe(2);
    expect(got.get('p1')).toEqual(['other:2']);
    expect(got.get('p2')).toEqual(['other:1', 'other:2']);
    expect(got.get('v1')!.map((f) => (JSON.parse(f) as { seq: number }).seq)).toEqual([1, 2]);
    expect(got.get('v1b')).toEqual(got.get('v1'));
    expect(got.get('p3')).toEqual(['other:1', 'other:2']);
    room.presence({ kind: 'join', user: 'ann', at: 5 });
    expect(got.get('p1')).toEqual(['other:2']); // not told about itself
    expect(got.get('p2')).toEqual(['other:1', 'other:2', 'other-join:ann']);
    await waitFor(() => got.get('v1')!.length === 3, 2_000, 'the v1 diff');
    expect(JSON.parse(got.get('v1')![2]!)).toMatchObject({ type: 'presence.diff', joined: [{ user: 'ann', at: 5 }] });
    await sleep(PRESENCE_MS * 3);
    expect(got.get('p2')!.some((f) => f.includes('presence.diff'))).toBe(false);
    room.close();
  });
});

describe('LocalRoom presence reconciliation (leaves nobody announced)', () => {
  it('tells members once of a tracked user the store no longer lists, never of one told of after the read began', async () => {
    const room = new LocalRoom(ref, { fetchRange: async () => [], onDelivered: () => undefined, onGap: () => undefined }, GAP_WAIT_MS, PRESENCE_MS);
    const frames: string[] = [];
    const codec: RoomCodec = {
      message: () => Buffer.from('m'),
      batchesPresence: false,
      presence: (_ref, change) => Buffer.from(`${change.kind}:${change.user}`),
      direct: () => Buffer.from('d'),
    };
    room.members.add({ conn: { codec, send: (f: Buffer) => frames.push(f.toString()) }, local: room, pending: null, skipUpTo: 0 });
    room.start({ seq: 0, epoch: EPOCH });
    expect(room.tracksPresence).toBe(false);
    room.trackPresence(['ann', 'ben']);
    expect(room.tracksPresence).toBe(true);
    await sleep(5);
    const readAt = Date.now();
    await sleep(5);
    room.presence({ kind: 'join', user: 'cid', at: 1 }); // told after the read began: kept
    room.reconcilePresence(new Set(['ann']), readAt); // ben expired, cid not in the (older) read
    expect(frames).toEqual(['join:cid', 'leave:ben']);
    room.reconcilePresence(new Set(['ann']), Date.now() + 1);
    expect(frames).toEqual(['join:cid', 'leave:ben', 'leave:cid']);
    room.reconcilePresence(new Set(['ann']), Date.now() + 1); // nothing left to tell
    room.presence({ kind: 'leave', user: 'ben', at: 2 }); // a late announcement of a leave already told
    expect(frames).toEqual(['join:cid', 'leave:ben', 'leave:cid']);
    room.close();
  });
});

describe('delivery policies: members that fall behind', () => {
  /** A member whose `behind()` the test switches, and which is told when it "drains". */
  function laggard(room: LocalRoom): TestMember & { setBehind(b: boolean): void; drain(): void } {
    let behind = false;
    let waiters: Array<() => void> = [];
    const m = member(room, { conn: { behind: () => behind, whenDrained: (fn) => waiters.push(fn) } });
    return {
      ...m,
      setBehind: (b) => (behind = b),
      drain: () => {
        behind = false;
        const w = waiters;
        waiters = [];
        for (const fn of w) fn();
      },
    };
  }
  const keyed = (seq: number, key: string): RoomMessage => ({ ...msg(seq), key });

  it('conflate: a catch-up past the keys a room keeps says complete: false; the keys it kept follow in seq order', async () => {
    const h = hooks();
    const room = new LocalRoom(ref, h.hooks, GAP_WAIT_MS, PRESENCE_MS, 0, { delivery: 'conflate', maxPublishRate: 0, conflateKeys: 3 });
    rooms.push(room);
    room.start({ seq: 0, epoch: EPOCH });
    const slow = laggard(room);
    const fast = member(room);
    room.accept(keyed(1, 'a'));
    slow.setBehind(true);
    // a b c d a: the room keeps 3 keys, so key b's newest (3) is evicted once d arrives
    for (const [seq, key] of [
      [2, 'a'],
      [3, 'b'],
      [4, 'c'],
      [5, 'd'],
      [6, 'a'],
    ] as const)
      room.accept(keyed(seq, key));
    expect(slow.seqs()).toEqual([1]);
    slow.drain();
    const after = slow.decoded().slice(1);
    expect(after[0]).toEqual({ type: 'catchup', room: 'lobby', from: 2, to: 6, keys: 3, complete: false });
    expect(after.slice(1).map((f) => [f.seq, f.key])).toEqual([
      [4, 'c'],
      [5, 'd'],
      [6, 'a'],
    ]);
    room.accept(keyed(7, 'b'));
    expect(slow.seqs()).toEqual([1, 4, 5, 6, 7]);
    expect(fast.seqs()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('conflate: a member that reads again before anything new was published gets no catch-up; an ordered room never asks', () => {
    const h = hooks();
    const room = new LocalRoom(ref, h.hooks, GAP_WAIT_MS, PRESENCE_MS, 0, { delivery: 'conflate', maxPublishRate: 0, conflateKeys: 10 });
    rooms.push(room);
    room.start({ seq: 0, epoch: EPOCH });
    const slow = laggard(room);
    room.accept(keyed(1, 'a'));
    slow.setBehind(true);
    room.accept(keyed(2, 'a'));
    slow.drain();
    expect(slow.decoded().map((f) => f.type)).toEqual(['message', 'catchup', 'message']);
    slow.setBehind(true);
    slow.drain(); // nothing was held back: nothing to send
    expect(slow.decoded()).toHaveLength(3);

    const ordered = newRoom(hooks());
    ordered.start({ seq: 0, epoch: EPOCH });
    const o = laggard(ordered);
    o.setBehind(true);
    for (const seq of [1, 2, 3]) ordered.accept(msg(seq));
    expect(o.seqs()).toEqual([1, 2, 3]);
  });

  it('drop: skipped names the seqs not sent and the newest follows; a member that left is not caught up', () => {
    const h = hooks();
    const room = new LocalRoom(ref, h.hooks, GAP_WAIT_MS, PRESENCE_MS, 0, { delivery: 'drop', maxPublishRate: 0, conflateKeys: 10 });
    rooms.push(room);
    room.start({ seq: 0, epoch: EPOCH });
    const slow = laggard(room);
    const gone = laggard(room);
    room.accept(msg(1));
    slow.setBehind(true);
    gone.setBehind(true);
    for (const seq of [2, 3, 4, 5]) room.accept(msg(seq));
    room.members.delete(gone.membership);
    slow.drain();
    gone.drain();
    expect(slow.decoded().slice(1)).toEqual([{ type: 'skipped', room: 'lobby', from: 2, to: 4 }, expect.objectContaining({ type: 'message', seq: 5 })]);
    expect(gone.seqs()).toEqual([1]);
  });
});
