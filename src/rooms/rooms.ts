/**
 * The node's local room index. A room exists here, and its backplane subject is subscribed, only while
 * it has local members (interest-based routing: a node receives only rooms it has members in).
 */
import type { Backplane, BackplaneSubscription } from '../engines/backplane/backplane.js';
import type { RoomLog } from '../engines/roomlog/roomlog.js';
import { roomKey, type RoomRef } from '../engines/types.js';
import type { RoomPolicies } from '../messaging/room-policy.js';
import { LocalRoom, type RoomHooks } from './room.js';
import { decodeEnvelope, roomSubject, type RoomEnvelope } from '../messaging/subjects.js';

interface Entry {
  room: LocalRoom;
  ready: Promise<void>;
  sub: BackplaneSubscription | null;
  /** Joins in progress or done; the room is dropped when it reaches 0. */
  refs: number;
}

export class RoomRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly backplane: Backplane,
    private readonly roomLog: RoomLog,
    private readonly hooks: RoomHooks,
    private readonly options: { gapWaitMs: number; presenceDiffMs: number; gapGiveUpMs?: number; policies?: RoomPolicies },
    private readonly onError: (err: unknown) => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The rooms live on this node now (for stats; a snapshot, not a live view). */
  list(): LocalRoom[] {
    return Array.from(this.entries.values(), (e) => e.room);
  }

  get(ref: RoomRef): LocalRoom | undefined {
    return this.entries.get(roomKey(ref))?.room;
  }

  /** Takes a reference on a room, creating and subscribing it if needed; resolves when it is live. */
  async acquire(ref: RoomRef): Promise<LocalRoom> {
    const key = roomKey(ref);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const policy = this.options.policies?.of(ref.tenant, ref.room);
      const room = new LocalRoom(ref, this.hooks, this.options.gapWaitMs, this.options.presenceDiffMs, this.options.gapGiveUpMs, policy);
      const created: Entry = { room, ready: Promise.resolve(), sub: null, refs: 0 };
      created.ready = this.open(created);
      entry = created;
      this.entries.set(key, entry);
    }
    entry.refs++;
    try {
      await entry.ready;
    } catch (err) {
      this.release(entry.room);
      throw err;
    }
    return entry.room;
  }

  private async open(entry: Entry): Promise<void> {
    const room = entry.room;
    // Subscribe first, then read the position: nothing published after the read can be missed.
    const sub = await this.backplane.subscribe(roomSubject(room.ref), (payload) => {
      let env: RoomEnvelope;
      try {
        env = decodeEnvelope<RoomEnvelope>(payload);
      } catch (err) {
        this.onError(err);
        return;
      }
      if (env.k === 'm') room.accept(env.m, env.x);
      else
        room.presence(env.info !== undefined ? { kind: env.kind, user: env.user, at: env.at, info: env.info } : { kind: env.kind, user: env.user, at: env.at });
    });
    if (room.closed) {
      await sub.unsubscribe();
      return;
    }
    entry.sub = sub;
    room.start(await this.roomLog.position(room.ref));
  }

  /**
   * Drops a reference taken by `acquire` on this very room object; the last one closes the room and
   * unsubscribes. A stale room (already closed and replaced under the same key) is ignored, so one
   * caller's mistake cannot release another room's reference.
   */
  release(room: LocalRoom): void {
    const key = roomKey(room.ref);
    const entry = this.entries.get(key);
    if (entry === undefined || entry.room !== room) return;
    entry.refs--;
    if (entry.refs > 0) return;
    this.entries.delete(key);
    entry.room.close();
    const sub = entry.sub;
    if (sub !== null) sub.unsubscribe().catch(this.onError);
  }

  async close(): Promise<void> {
    const subs = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(
      subs.map(async (e) => {
        e.room.close();
        if (e.sub !== null) await e.sub.unsubscribe();
      }),
    );
  }
}
