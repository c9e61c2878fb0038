/**
 * A room as one node sees it: its local members and its ordered delivery stream.
 *
 * Ordering (ARCHITECTURE.md §4 step 5): messages are delivered to members strictly in seq order. A
 * message that arrives early is held while the missing seqs are awaited; after `gapWaitMs` they are
 * fetched from the RoomLog. Seqs below the next expected one are duplicates and dropped. Each message's
 * frame is encoded once here and the same bytes are queued to every member.
 */
import type { Json, RoomMessage, RoomPosition, RoomRef } from '../engines/types.js';
import { DEFAULT_POLICY, type DeliveryPolicy, type RoomPolicy } from '../messaging/room-policy.js';
import { messageFrame, wireFrame } from '../protocol/encode.js';

/** A connection's membership of one room. */
export interface Membership {
  readonly conn: RoomMember;
  /**
   * The user this membership is present as, when it is not the connection's own (a Pusher presence channel's
   * `channel_data` names it): presence events about this user are not sent to this membership.
   */
  readonly presenceUser?: string;
  /** The local room once the join has acquired it. */
  local: LocalRoom | null;
  /** While joining: frames that arrived before the join's recovery was sent (seq, frame). */
  pending: Array<[number, Buffer]> | null;
  /** Messages with seq <= skipUpTo were already sent by recovery. */
  skipUpTo: number;
  /** Set when more than MAX_PENDING frames arrived during the join: it then answers `reset`. */
  overflow?: boolean;
  /**
   * `conflate` and `drop` rooms: set while the member is behind (it had been sent every message up to this seq
   * when its unsent output passed the bound); nothing is sent to it until it reads again (`catchUp`).
   */
  behindAfter?: number;
}

/** Users named in one presence diff at most; beyond, the diff carries counts only. */
export const PRESENCE_DIFF_MAX_USERS = 50;

/** Frames buffered per joining member at most (a join whose recovery takes longer is reset instead). */
export const MAX_PENDING = 10_000;

/**
 * How one wire protocol writes what a room delivers. A room encodes each message once per codec among its
 * members (not once per member), so a room of v1 and Pusher members encodes every message twice at most.
 */
export interface RoomCodec {
  /** The frame of a sequenced room message. */
  message(m: RoomMessage): Buffer;
  /** Members get presence as `presence.diff` frames batched per interval (protocol v1), not from `presence`. */
  readonly batchesPresence: boolean;
  /**
   * A user's first join / last leave of the room as a frame of its own, sent at once (only in rooms that track
   * a member list: `LocalRoom.trackPresence`); null: nothing to send.
   */
  presence(ref: RoomRef, change: PresenceEvent): Buffer | null;
  /** A direct message to a user (rooms/users.ts). */
  direct(user: string, env: DirectMessage): Buffer;
  /**
   * False: members get no `catchup` / `skipped` frame when they fell behind in a conflate or drop room, only the
   * messages (Pusher's protocol has no such event). Default: they do (protocol v1).
   */
  readonly catchupFrames?: false;
}

/** A direct message as the user's connections get it. */
export interface DirectMessage {
  readonly from: string;
  readonly ts: number;
  readonly data: Json;
  readonly event?: string;
}

/** A user's presence in a room changed somewhere in the cluster (first join or last leave). */
export interface PresenceEvent {
  readonly kind: 'join' | 'leave';
  readonly user: string;
  readonly at: number;
  /** What the user is shown with (a Pusher presence channel's `user_info`), on joins. */
  readonly info?: Json;
}

/** Protocol v1: message frames, presence batched into diffs. */
export const V1_CODEC: RoomCodec = {
  message: messageFrame,
  batchesPresence: true,
  presence: () => null,
  direct: (_user, env) => wireFrame({ type: 'direct', from: env.from, ts: env.ts, data: env.data }),
};

/** What a room needs of a connection. */
export interface RoomMember {
  readonly codec: RoomCodec;
  /** A connection that can be excluded from a message (Pusher's socket id). */
  readonly socketId?: string;
  send(frame: Buffer): void;
  /**
   * Set once the member was told to reconnect elsewhere (a drain's notice): it gets messages until its close but
   * no more `presence.diff` (it asks for the list again after its rejoin, as after every join). Without this,
   * every client leaving a draining node made the node send a diff to each member still there.
   */
  readonly leaving?: boolean;
  /**
   * Whether the member's unsent output is past the point where a `conflate` or `drop` room stops sending to it
   * (gateway/outbox.ts `behindSink`). A member without it gets every message whatever the room's policy.
   */
  behind?(): boolean;
  /** Calls `fn` once, when the member's queued output has all been handed to its socket (it reads again). */
  whenDrained?(fn: () => void): void;
}

export interface RoomHooks {
  /** Fetch seqs [from, to] for gap repair (RoomLog window). */
  fetchRange(ref: RoomRef, from: number, to: number): Promise<RoomMessage[]>;
  onDelivered(message: RoomMessage, members: number): void;
  /** A gap was repaired, skipped, or its fetch failed (retried; `err` is the cause). */
  onGap(result: 'repaired' | 'skipped' | 'failed', err?: unknown): void;
  /**
   * A member of a `conflate` or `drop` room fell behind (`missed` undefined), or read again and was caught up:
   * `missed` seqs it was not sent, `sent` messages it was sent instead (the newest of each key; the newest one).
   */
  onBehind?(policy: Exclude<DeliveryPolicy, 'ordered'>, missed?: number, sent?: number): void;
}

const MAX_HELD = 10_000;

export class LocalRoom {
  readonly members = new Set<Membership>();
  /** Seq of the last message delivered in order; epoch of the stream. */
  private lastSeq = 0;
  private epoch = '';
  private started = false;
  /** Messages received before the start position was known, or ahead of a gap. */
  private readonly held = new Map<number, RoomMessage>();
  private gapTimer: NodeJS.Timeout | null = null;
  private fetching = false;
  /** When the current gap (at lastSeq + 1) was first fetched for, and the next retry delay. */
  private gapSince = 0;
  private gapRetryMs = 0;
  private presenceJoined = new Map<string, number>();
  private presenceLeft = new Map<string, number>();
  private presenceTimer: NodeJS.Timeout | null = null;
  /**
   * The connection (its `socketId`) a message is not delivered to: a Pusher client event's sender, an HTTP
   * trigger's `socket_id`. Known for messages that came by the backplane, not for ones fetched by gap repair.
   */
  private readonly except = new WeakMap<RoomMessage, string>();
  /**
   * Users this node's members were told are present, and when they were last told (join or seed): kept for
   * rooms whose members hold a member list (Pusher presence channels), so leaves that are never announced (a
   * crashed node's users expire in the presence store) can be found and told (`reconcilePresence`).
   */
  private known: Map<string, number> | null = null;
  /**
   * `conflate`: the newest message of each key (key-less messages share the key ""), least recently updated
   * first, at most `policy.conflateKeys`; `drop`: the newest message only. Null in `ordered` rooms.
   */
  private latest: Map<string, RoomMessage> | null = null;
  /** The highest seq of a key's newest message dropped from `latest` for room (a catch-up after it is incomplete). */
  private evictedUpTo = 0;
  /** Frames of the messages in `latest`, per codec, encoded when a member is first caught up with them. */
  private readonly frames = new WeakMap<RoomMessage, Map<RoomCodec, Buffer>>();
  closed = false;

  constructor(
    readonly ref: RoomRef,
    private readonly hooks: RoomHooks,
    private readonly gapWaitMs: number,
    private readonly presenceDiffMs: number,
    /**
     * How long a missing seq is waited for (fetching again with backoff) before members skip it. A seq is
     * assigned before its message is durable and published, so under load a gap can last as long as a
     * commit; only a message that never became durable stays missing. 0: skip after the first fetch.
     */
    private readonly gapGiveUpMs = 0,
    /** How members that fall behind are served (messaging/room-policy.ts). */
    readonly policy: RoomPolicy = DEFAULT_POLICY,
  ) {}

  /** The position members joining now start after. */
  position(): RoomPosition {
    return { seq: this.lastSeq, epoch: this.epoch };
  }

  /** Sets where the stream starts (the RoomLog position read after subscribing). */
  start(position: RoomPosition): void {
    this.lastSeq = position.seq;
    this.epoch = position.epoch;
    this.started = true;
    this.drainHeld();
  }

  /** A sequenced message from the backplane. */
  accept(m: RoomMessage, except?: string): void {
    if (this.closed) return;
    if (except !== undefined) this.except.set(m, except);
    if (!this.started) {
      this.hold(m);
      return;
    }
    if (m.epoch !== this.epoch) {
      // A restarted sequence (RoomLog state lost) begins again at seq 1 under a new epoch: follow it from
      // there. Anything else from another epoch is stale (a late message of the old one) and dropped.
      // Members see the epoch change on the message itself and reload from history.
      if (m.seq !== 1) return;
      this.epoch = m.epoch;
      this.lastSeq = 0;
      this.held.clear();
      // Members behind catch up with the new epoch's messages only (they see the epoch change and reload).
      this.latest?.clear();
      this.evictedUpTo = 0;
      for (const ms of this.members) if (ms.behindAfter !== undefined) ms.behindAfter = 0;
    }
    if (m.seq <= this.lastSeq) return;
    if (m.seq === this.lastSeq + 1) {
      this.deliver(m);
      this.drainHeld();
    } else {
      this.hold(m);
    }
  }

  private hold(m: RoomMessage): void {
    this.held.set(m.seq, m);
    if (this.held.size > MAX_HELD && this.started) {
      // Too much waiting on one gap: give up on it now rather than hold without bound.
      this.skipGap();
      this.drainHeld();
      return;
    }
    if (this.started && this.gapTimer === null) {
      this.gapTimer = setTimeout(() => void this.repairGap(), this.gapWaitMs);
      this.gapTimer.unref();
    }
  }

  private drainHeld(): void {
    for (;;) {
      const next = this.held.get(this.lastSeq + 1);
      if (next === undefined) break;
      this.held.delete(next.seq);
      this.deliver(next);
    }
    for (const seq of this.held.keys()) if (seq <= this.lastSeq) this.held.delete(seq);
    if (this.held.size === 0 && this.gapTimer !== null) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
    } else if (this.held.size > 0 && this.gapTimer === null && this.started) {
      this.gapTimer = setTimeout(() => void this.repairGap(), this.gapWaitMs);
      this.gapTimer.unref();
    }
  }

  private async repairGap(): Promise<void> {
    this.gapTimer = null;
    if (this.closed || this.held.size === 0 || this.fetching) return;
    const firstHeld = Math.min(...this.held.keys());
    const from = this.lastSeq + 1;
    if (firstHeld <= from) {
      this.drainHeld();
      return;
    }
    this.fetching = true;
    let found = false;
    try {
      const fetched = await this.hooks.fetchRange(this.ref, from, firstHeld - 1);
      // A copy held already came by the backplane (with its `except`): kept over the fetched one.
      for (const m of fetched) if (m.epoch === this.epoch && m.seq > this.lastSeq && !this.held.has(m.seq)) this.held.set(m.seq, m);
      found = this.held.has(this.lastSeq + 1);
    } catch (err) {
      // Counted and logged by the node; the gap is retried below like one the window does not hold yet.
      this.hooks.onGap('failed', err);
    } finally {
      this.fetching = false;
    }
    if (this.closed) return;
    if (found) {
      this.hooks.onGap('repaired');
      this.gapSince = 0;
    } else {
      const now = Date.now();
      if (this.gapSince === 0) {
        this.gapSince = now;
        this.gapRetryMs = this.gapWaitMs;
      }
      if (now - this.gapSince < this.gapGiveUpMs) {
        // Not there yet (e.g. still being committed): try again later, members of this room wait.
        this.gapRetryMs = Math.min(this.gapRetryMs * 2, 1_000);
        this.gapTimer = setTimeout(() => void this.repairGap(), this.gapRetryMs);
        this.gapTimer.unref();
        return;
      }
      this.gapSince = 0;
      this.skipGap();
    }
    this.drainHeld();
  }

  /** The missing seqs cannot be had: continue from the first held message (members see a gap). */
  private skipGap(): void {
    if (this.held.size === 0) return;
    this.lastSeq = Math.min(...this.held.keys()) - 1;
    this.hooks.onGap('skipped');
  }

  private deliver(m: RoomMessage): void {
    this.lastSeq = m.seq;
    this.gapSince = 0;
    if (this.policy.delivery !== 'ordered') this.remember(m);
    if (this.members.size === 0) return;
    const except = this.except.get(m);
    // Encoded once per codec: the current codec's frame in locals; a map only when members of another codec
    // come between (a lookup per change of codec, not per member).
    let codec: RoomCodec | null = null;
    let frame: Buffer | null = null;
    let encoded: Map<RoomCodec, Buffer> | null = null;
    for (const ms of this.members) {
      const c = ms.conn.codec;
      if (c !== codec) {
        if (codec !== null) (encoded ??= new Map()).set(codec, frame!);
        codec = c;
        frame = encoded?.get(c) ?? c.message(m);
      }
      if (except === undefined || ms.conn.socketId !== except) this.sendMessage(ms, m.seq, frame!);
    }
    this.hooks.onDelivered(m, this.members.size);
  }

  private sendMessage(ms: Membership, seq: number, frame: Buffer): void {
    if (ms.pending !== null) {
      if (ms.pending.length < MAX_PENDING) ms.pending.push([seq, frame]);
      else ms.overflow = true;
    } else if (seq > ms.skipUpTo) {
      if (this.latest !== null) {
        if (ms.behindAfter !== undefined) return; // behind: caught up when it reads again
        if (ms.conn.behind?.() === true) {
          this.fellBehind(ms, seq - 1);
          return;
        }
      }
      ms.conn.send(frame);
    }
  }

  /** `conflate` / `drop`: keeps what a member that fell behind is sent when it reads again. */
  private remember(m: RoomMessage): void {
    const latest = (this.latest ??= new Map());
    if (this.policy.delivery === 'drop') {
      latest.clear();
      latest.set('', m);
      return;
    }
    const key = m.key ?? '';
    latest.delete(key); // re-inserted last: the map's order is least recently updated first
    latest.set(key, m);
    if (latest.size > this.policy.conflateKeys) {
      const [oldestKey, oldest] = latest.entries().next().value as [string, RoomMessage];
      latest.delete(oldestKey);
      this.evictedUpTo = Math.max(this.evictedUpTo, oldest.seq);
    }
  }

  private fellBehind(ms: Membership, after: number): void {
    ms.behindAfter = after;
    this.hooks.onBehind?.(this.policy.delivery as Exclude<DeliveryPolicy, 'ordered'>);
    ms.conn.whenDrained?.(() => this.catchUp(ms));
  }

  /**
   * A member that fell behind reads again. `conflate`: a `catchup` frame, then the newest message of each key
   * it missed, in seq order; `drop`: a `skipped` frame naming the seqs it missed, then the room's newest message.
   * Either way it then gets every new message: seqs stay increasing and nothing is sent twice.
   */
  private catchUp(ms: Membership): void {
    const after = ms.behindAfter;
    if (after === undefined || this.closed || !this.members.has(ms)) return;
    ms.behindAfter = undefined;
    const latest = this.latest;
    if (latest === null || this.lastSeq <= after) return;
    const except = (m: RoomMessage): boolean => ms.conn.socketId !== undefined && this.except.get(m) === ms.conn.socketId;
    const room = this.ref.room;
    const missed = this.lastSeq - after;
    if (this.policy.delivery === 'drop') {
      const newest = latest.get('')!;
      if (newest.seq > after + 1 && ms.conn.codec.catchupFrames !== false)
        ms.conn.send(wireFrame({ type: 'skipped', room, from: after + 1, to: newest.seq - 1 }));
      if (!except(newest)) ms.conn.send(this.frameOf(newest, ms.conn.codec));
      this.hooks.onBehind?.('drop', missed, 1);
      return;
    }
    const due: RoomMessage[] = [];
    for (const m of latest.values()) if (m.seq > after && !except(m)) due.push(m);
    due.sort((a, b) => a.seq - b.seq);
    const complete = this.evictedUpTo <= after;
    if (ms.conn.codec.catchupFrames !== false)
      ms.conn.send(wireFrame({ type: 'catchup', room, from: after + 1, to: this.lastSeq, keys: due.length, complete }));
    for (const m of due) ms.conn.send(this.frameOf(m, ms.conn.codec));
    this.hooks.onBehind?.('conflate', missed, due.length);
  }

  private frameOf(m: RoomMessage, codec: RoomCodec): Buffer {
    let byCodec = this.frames.get(m);
    if (byCodec === undefined) this.frames.set(m, (byCodec = new Map()));
    let frame = byCodec.get(codec);
    if (frame === undefined) byCodec.set(codec, (frame = codec.message(m)));
    return frame;
  }

  /**
   * A user's presence in the room changed somewhere in the cluster: members whose codec has a frame for it
   * get it at once (encoded once per codec; not a membership present as that very user), the others one
   * batched diff frame per interval.
   */
  presence(change: PresenceEvent): void {
    if (this.closed) return;
    const { kind, user, at } = change;
    if (this.known !== null) {
      if (kind === 'join') this.known.set(user, Date.now());
      else if (!this.known.delete(user)) return; // told already (an expiry this node found, or a repeat)
    }
    // Frames of their own go only to members holding a member list, which only a tracked room has (Pusher
    // presence channels): any other room takes the O(1) batching path, whatever its size.
    let batched = this.known === null;
    if (this.known !== null) {
      const frames = new Map<RoomCodec, Buffer | null>();
      for (const ms of this.members) {
        const c = ms.conn.codec;
        if (c.batchesPresence) {
          batched = true;
          continue;
        }
        let frame = frames.get(c);
        if (frame === undefined) frames.set(c, (frame = c.presence(this.ref, change)));
        if (frame !== null && ms.pending === null && ms.presenceUser !== user && ms.conn.leaving !== true) ms.conn.send(frame);
      }
    }
    if (!batched) return;
    if (kind === 'join') {
      this.presenceLeft.delete(user);
      this.presenceJoined.set(user, at);
    } else {
      this.presenceJoined.delete(user);
      this.presenceLeft.set(user, at);
    }
    if (this.presenceTimer === null) {
      this.presenceTimer = setTimeout(() => this.flushPresence(), this.presenceDiffMs);
      this.presenceTimer.unref();
    }
  }

  private flushPresence(): void {
    this.presenceTimer = null;
    if (this.members.size === 0 || (this.presenceJoined.size === 0 && this.presenceLeft.size === 0)) return;
    // Bounded per diff: when many users came and went in one interval (a big room reconnecting), only
    // the counts are sent and clients ask for the list if they show it. Traffic per member is then at
    // most one small frame per interval, however large the room.
    const joinedN = this.presenceJoined.size;
    const leftN = this.presenceLeft.size;
    const frame =
      joinedN + leftN > PRESENCE_DIFF_MAX_USERS
        ? wireFrame({ type: 'presence.diff', room: this.ref.room, joined: [], left: [], truncated: { joined: joinedN, left: leftN } })
        : wireFrame({
            type: 'presence.diff',
            room: this.ref.room,
            joined: [...this.presenceJoined].map(([user, at]) => ({ user, at })),
            left: [...this.presenceLeft].map(([user, lastSeen]) => ({ user, lastSeen })),
          });
    this.presenceJoined = new Map();
    this.presenceLeft = new Map();
    for (const ms of this.members) if (ms.pending === null && ms.conn.codec.batchesPresence && ms.conn.leaving !== true) ms.conn.send(frame);
  }

  /** Starts (or adds to) the member list this node's members hold: users a subscriber was just given. */
  trackPresence(users: Iterable<string>): void {
    this.known ??= new Map();
    const now = Date.now();
    for (const user of users) this.known.set(user, now);
  }

  /** Whether the room tracks a member list (see `known`). */
  get tracksPresence(): boolean {
    return this.known !== null;
  }

  /**
   * The presence store's online users, read at `readAt`: a tracked user it no longer lists, and not told of
   * since the read began, left without a leave being announced (expired): members are told now, once.
   */
  reconcilePresence(online: ReadonlySet<string>, readAt: number): void {
    if (this.closed || this.known === null) return;
    const gone: string[] = [];
    for (const [user, toldAt] of this.known) if (!online.has(user) && toldAt < readAt) gone.push(user);
    const now = Date.now();
    for (const user of gone) this.presence({ kind: 'leave', user, at: now });
  }

  close(): void {
    this.closed = true;
    this.latest = null;
    if (this.gapTimer !== null) clearTimeout(this.gapTimer);
    if (this.presenceTimer !== null) clearTimeout(this.presenceTimer);
    this.held.clear();
  }
}
