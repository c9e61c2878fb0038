/**
 * A PresenceStore that tells the webhook producer about presence changes: every call goes to the real store
 * unchanged (same answers, same errors); a join or leave that changed the user's presence in a room with webhooks
 * is passed on after it resolved, off the caller's path. Rooms without webhooks cost one map lookup.
 */
import type { PresenceConn, PresenceStore, RoomMember, UserPresence } from '../engines/presence/presence.js';
import type { SettleScope, Settled } from '../engines/presence/settle.js';
import type { RoomRef } from '../engines/types.js';

export interface PresenceChangeSink {
  /** Null when the room has no webhook wanting its presence. */
  scope(ref: RoomRef): SettleScope | null;
  joined(ref: RoomRef, user: string, scope: SettleScope): void;
  left(ref: RoomRef, scope: SettleScope): void;
}

export class HookedPresence implements PresenceStore {
  constructor(
    private readonly store: PresenceStore,
    private readonly sink: PresenceChangeSink,
  ) {}

  get kind(): string {
    return this.store.kind;
  }

  async join(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    const result = await this.store.join(ref, conn);
    if (result.changed) {
      const scope = this.sink.scope(ref);
      if (scope !== null) this.sink.joined(ref, conn.user, scope);
    }
    return result;
  }

  async leave(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    const result = await this.store.leave(ref, conn);
    if (result.changed) {
      const scope = this.sink.scope(ref);
      if (scope !== null) this.sink.left(ref, scope);
    }
    return result;
  }

  connect(conn: PresenceConn): Promise<void> {
    return this.store.connect(conn);
  }
  disconnect(conn: PresenceConn): Promise<void> {
    return this.store.disconnect(conn);
  }
  heartbeat(nodeId: string, connIds: readonly string[]): Promise<void> {
    return this.store.heartbeat(nodeId, connIds);
  }
  members(ref: RoomRef): Promise<RoomMember[]> {
    return this.store.members(ref);
  }
  user(tenant: string, user: string): Promise<UserPresence> {
    return this.store.user(tenant, user);
  }
  rooms(tenant: string): Promise<string[]> {
    return this.store.rooms(tenant);
  }
  removeNode(nodeId: string): Promise<void> {
    return this.store.removeNode(nodeId);
  }
  health(): { ok: boolean; detail?: string } {
    return this.store.health();
  }
  close(): Promise<void> {
    return this.store.close();
  }
  settleJoin(ref: RoomRef, user: string, scope: SettleScope): Promise<Settled> {
    return this.store.settleJoin(ref, user, scope);
  }
  watch(ref: RoomRef, delayMs: number): Promise<void> {
    return this.store.watch(ref, delayMs);
  }
  settleDue(scope: (ref: RoomRef) => SettleScope | null, limit: number): Promise<Settled[]> {
    return this.store.settleDue(scope, limit);
  }
}
