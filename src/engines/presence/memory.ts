import { fewAdd, fewDelete, fewEach, fewHas, fewList, fewSize, type Few } from '../../util/few.js';
import { roomKey, type Json, type RoomRef } from '../types.js';
import { defaultPresenceOptions, type PresenceConn, type PresenceOptions, type PresenceStore, type RoomMember, type UserPresence } from './presence.js';
import { EngineError } from '../errors.js';
import type { SettleScope, Settled } from './settle.js';

export interface MemoryPresenceOptions extends PresenceOptions {
  /** How often expired connections and stale recent leavers are swept, ms. Default ttlMs / 3, 10..5000. */
  sweepMs: number;
}

/** A registered connection. `beat` is the time of its last refresh (connect, join or heartbeat). */
interface ConnState {
  readonly conn: PresenceConn;
  beat: number;
  /** Rooms joined (usually one, so not a Set until two: see util/few.ts). */
  rooms: Few<string>;
}

interface RoomState {
  /** Online members: user -> their connection ids in this room. */
  readonly members: Map<string, Few<string>>;
  /** Online members' latest join info (PresenceConn.info), for users whose join gave one. */
  readonly info: Map<string, Json>;
  /** Users who left (and are not back), user -> when their last connection left. */
  readonly recent: Map<string, number>;
}

/** A room's reported webhook state (settle.ts): occupancy, reported users, reported users who left → when. */
interface HookState {
  occupied: boolean;
  readonly users: Set<string>;
  readonly pend: Map<string, number>;
}

interface UserState {
  conns: Few<string>;
  /** Last time a connection of the user was alive; updated when a connection is removed. */
  lastSeen: number;
}

interface TenantState {
  readonly rooms: Map<string, RoomState>;
  readonly users: Map<string, UserState>;
}

/**
 * MemoryPresenceStore: the embedded PresenceStore. All state lives in this process, grouped per
 * tenant; connections are indexed globally by their (globally unique) connId.
 *
 * A connection whose last refresh is older than `ttlMs` is gone: reads expire such connections of the
 * room/user they look at before answering, and a periodic sweep (unref'd timer, cleared by `close`)
 * expires the rest, so a crashed node's users go offline with `lastSeen` = their last refresh.
 * `members` lists online users first (by user id), then recent leavers, newest first; at most
 * `recentMax` leavers younger than `recentMs` are kept per room. Offline users are remembered for
 * `user()` until `recentMs` after they were last seen.
 *
 * `connect`, `join` and `heartbeat` refresh a connection (`join` registers it if `connect` was not
 * called); a heartbeat refreshes only the listed connections that belong to `nodeId`. `join`/`leave`
 * with a connection of another tenant than the room throw.
 */
export class MemoryPresenceStore implements PresenceStore {
  readonly kind = 'memory';
  private readonly options: MemoryPresenceOptions;
  private readonly now: () => number;
  private readonly tenants = new Map<string, TenantState>();
  private readonly conns = new Map<string, ConnState>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Settling (settle.ts): reported state per room (`tenant/room`), and when each watched room is due. */
  private readonly hooks = new Map<string, HookState>();
  private readonly due = new Map<string, { ref: RoomRef; at: number }>();

  constructor(options: Partial<MemoryPresenceOptions> = {}, now: () => number = Date.now) {
    const base = { ...defaultPresenceOptions, ...options };
    this.options = { ...base, sweepMs: options.sweepMs ?? Math.min(5000, Math.max(10, base.ttlMs / 3)) };
    this.now = now;
    this.timer = setInterval(() => this.sweep(), this.options.sweepMs);
    this.timer.unref();
  }

  async connect(conn: PresenceConn): Promise<void> {
    this.ensureOpen();
    this.register(conn);
  }

  async disconnect(conn: PresenceConn): Promise<void> {
    this.ensureOpen();
    const state = this.conns.get(conn.connId);
    if (state !== undefined) this.drop(state, this.now());
  }

  async join(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    this.ensureOpen();
    checkTenant(ref, conn);
    const tenant = this.tenant(ref.tenant);
    const room = tenant.rooms.get(ref.room);
    // Only this user's stale connections matter for `changed`: O(their connections), not O(room).
    const existing = room?.members.get(conn.user);
    if (existing !== undefined) this.expireIds(existing);
    const state = this.register(conn);
    if (fewHas(state.rooms, ref.room)) return { changed: false };
    const target = room ?? this.room(tenant, ref.room);
    state.rooms = fewAdd(state.rooms, ref.room);
    const ids = target.members.get(conn.user);
    const changed = ids === undefined;
    if (changed) target.recent.delete(conn.user);
    target.members.set(conn.user, fewAdd(ids, conn.connId));
    if (conn.info !== undefined) target.info.set(conn.user, conn.info);
    return { changed };
  }

  async leave(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    this.ensureOpen();
    checkTenant(ref, conn);
    const state = this.conns.get(conn.connId);
    if (state === undefined || !fewHas(state.rooms, ref.room)) return { changed: false };
    const now = this.now();
    if (this.expired(state, now)) {
      // Already gone: its leave (with lastSeen = last refresh) happened at expiry, not now.
      this.drop(state, state.beat);
      return { changed: false };
    }
    return { changed: this.leaveRoom(state, ref.room, now) };
  }

  async heartbeat(nodeId: string, connIds: readonly string[]): Promise<void> {
    this.ensureOpen();
    const now = this.now();
    for (const id of connIds) {
      const state = this.conns.get(id);
      if (state === undefined || state.conn.nodeId !== nodeId) continue;
      if (this.expired(state, now)) this.drop(state, state.beat);
      else state.beat = now;
    }
  }

  async members(ref: RoomRef): Promise<RoomMember[]> {
    this.ensureOpen();
    const room = this.tenants.get(ref.tenant)?.rooms.get(ref.room);
    if (room === undefined) return [];
    this.expireRoom(room);
    const now = this.now();
    this.pruneRecent(room, now);
    const online: RoomMember[] = [];
    for (const [user, ids] of room.members) {
      let lastSeen = 0;
      fewEach(ids, (id) => (lastSeen = Math.max(lastSeen, this.conns.get(id)?.beat ?? 0)));
      const info = room.info.get(user);
      online.push(
        info !== undefined ? { user, online: true, connections: fewSize(ids), lastSeen, info } : { user, online: true, connections: fewSize(ids), lastSeen },
      );
    }
    online.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
    const offline: RoomMember[] = [...room.recent]
      .map(([user, lastSeen]) => ({ user, online: false, connections: 0, lastSeen }))
      .sort((a, b) => b.lastSeen - a.lastSeen);
    this.collect(ref.tenant, ref.room);
    return [...online, ...offline];
  }

  async rooms(tenantName: string): Promise<string[]> {
    this.ensureOpen();
    const tenant = this.tenants.get(tenantName);
    if (tenant === undefined) return [];
    const out: string[] = [];
    for (const [name, room] of tenant.rooms) {
      this.expireRoom(room);
      if (room.members.size > 0) out.push(name);
    }
    return out.sort();
  }

  async user(tenant: string, user: string): Promise<UserPresence> {
    this.ensureOpen();
    const state = this.tenants.get(tenant)?.users.get(user);
    if (state === undefined) return { user, online: false, lastSeen: 0, connections: 0 };
    const now = this.now();
    for (const id of fewList(state.conns)) {
      const conn = this.conns.get(id);
      if (conn !== undefined && this.expired(conn, now)) this.drop(conn, conn.beat);
    }
    let lastSeen = state.lastSeen;
    fewEach(state.conns, (id) => (lastSeen = Math.max(lastSeen, this.conns.get(id)?.beat ?? 0)));
    return { user, online: fewSize(state.conns) > 0, lastSeen, connections: fewSize(state.conns) };
  }

  async removeNode(nodeId: string): Promise<void> {
    this.ensureOpen();
    const now = this.now();
    for (const state of [...this.conns.values()]) {
      if (state.conn.nodeId !== nodeId) continue;
      this.drop(state, this.expired(state, now) ? state.beat : now);
    }
  }

  async settleJoin(ref: RoomRef, user: string, scope: SettleScope): Promise<Settled> {
    this.ensureOpen();
    const room = this.tenants.get(ref.tenant)?.rooms.get(ref.room);
    if (room !== undefined) this.expireRoom(room);
    const at = this.now();
    const none: Settled = { ref, at, occupied: false, added: [], removed: [], vacated: false };
    if (room === undefined || room.members.size === 0) return none;
    const hook = this.hook(ref);
    const occupied = !hook.occupied;
    hook.occupied = true;
    let added: string[] = [];
    if (scope.members && room.members.has(user)) {
      hook.pend.delete(user);
      if (!hook.users.has(user)) {
        hook.users.add(user);
        added = [user];
      }
    }
    return { ...none, occupied, added };
  }

  async watch(ref: RoomRef, delayMs: number): Promise<void> {
    this.ensureOpen();
    const key = roomKey(ref);
    const at = this.now() + Math.max(0, delayMs);
    const cur = this.due.get(key);
    if (cur === undefined || at < cur.at) this.due.set(key, { ref, at });
  }

  async settleDue(scope: (ref: RoomRef) => SettleScope | null, limit: number): Promise<Settled[]> {
    this.ensureOpen();
    const now = this.now();
    const taken = [...this.due].filter(([, d]) => d.at <= now).slice(0, limit);
    const out: Settled[] = [];
    for (const [key, { ref }] of taken) {
      this.due.delete(key);
      const s = scope(ref);
      if (s === null) continue;
      const { settled, next } = this.settle(ref, s, now);
      out.push(settled);
      if (next > 0) {
        const cur = this.due.get(key);
        if (cur === undefined || next < cur.at) this.due.set(key, { ref, at: next });
      }
    }
    return out;
  }

  /** One room's settle (the Redis store's `hsettle`): due removals, occupancy, vacancy, and when to look again. */
  private settle(ref: RoomRef, scope: SettleScope, now: number): { settled: Settled; next: number } {
    const room = this.tenants.get(ref.tenant)?.rooms.get(ref.room);
    if (room !== undefined) this.expireRoom(room);
    const hook = this.hook(ref);
    const removed: string[] = [];
    let next = 0;
    const soon = (t: number): void => {
      if (next === 0 || t < next) next = t;
    };
    for (const [user, left] of [...hook.pend]) {
      if (left > now - scope.graceMs) {
        soon(left + scope.graceMs);
        continue;
      }
      hook.pend.delete(user);
      if (room?.members.has(user) !== true && hook.users.delete(user)) removed.push(user);
    }
    let occupied = false;
    let vacated = false;
    if (room !== undefined && room.members.size > 0) {
      occupied = !hook.occupied;
      hook.occupied = true;
      let oldest = Infinity;
      for (const ids of room.members.values()) fewEach(ids, (id) => (oldest = Math.min(oldest, this.conns.get(id)?.beat ?? now)));
      soon(oldest + this.options.ttlMs + 1);
    } else if (hook.occupied) {
      let emptied = 0;
      for (const seen of room?.recent.values() ?? []) emptied = Math.max(emptied, seen);
      if (emptied <= now - scope.graceMs) {
        removed.push(...hook.users);
        vacated = true;
        next = 0;
        this.hooks.delete(roomKey(ref));
      } else soon(emptied + scope.graceMs);
    }
    if (!scope.members) {
      hook.users.clear();
      hook.pend.clear();
    }
    if (!hook.occupied && hook.users.size === 0) this.hooks.delete(roomKey(ref));
    return { settled: { ref, at: now, occupied, added: [], removed, vacated }, next };
  }

  private hook(ref: RoomRef): HookState {
    const key = roomKey(ref);
    let hook = this.hooks.get(key);
    if (hook === undefined) {
      hook = { occupied: false, users: new Set(), pend: new Map() };
      this.hooks.set(key, hook);
    }
    return hook;
  }

  /** In-process: healthy until closed. */
  health(): { ok: boolean; detail?: string } {
    return this.closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
  }

  /**
   * Expires stale connections, drops recent leavers older than `recentMs`, and forgets offline users
   * last seen more than `recentMs` ago (their `user()` then reports lastSeen 0). Runs on the timer.
   */
  sweep(): void {
    const now = this.now();
    for (const state of [...this.conns.values()]) {
      if (this.expired(state, now)) this.drop(state, state.beat);
    }
    for (const [tenantName, tenant] of this.tenants) {
      for (const [name, user] of tenant.users) {
        if (fewSize(user.conns) === 0 && now - user.lastSeen > this.options.recentMs) tenant.users.delete(name);
      }
      for (const [roomName, room] of tenant.rooms) {
        this.pruneRecent(room, now);
        this.collect(tenantName, roomName);
      }
      if (tenant.rooms.size === 0 && tenant.users.size === 0) this.tenants.delete(tenantName);
    }
  }

  /** Counts of what is held in memory (for metrics and tests). */
  size(): { connections: number; rooms: number; tenants: number } {
    let rooms = 0;
    for (const tenant of this.tenants.values()) rooms += tenant.rooms.size;
    return { connections: this.conns.size, rooms, tenants: this.tenants.size };
  }

  private ensureOpen(): void {
    if (this.closed) throw new EngineError('presence', 'closed', 'presence store is closed');
  }

  private expired(state: ConnState, now: number): boolean {
    return now - state.beat > this.options.ttlMs;
  }

  /** Registers (or refreshes) a connection; an expired registration is dropped and started afresh. */
  private register(conn: PresenceConn): ConnState {
    const now = this.now();
    const existing = this.conns.get(conn.connId);
    if (existing !== undefined) {
      if (!this.expired(existing, now)) {
        existing.beat = now;
        return existing;
      }
      this.drop(existing, existing.beat);
    }
    const state: ConnState = { conn, beat: now, rooms: null };
    this.conns.set(conn.connId, state);
    const tenant = this.tenant(conn.tenant);
    let user = tenant.users.get(conn.user);
    if (user === undefined) {
      user = { conns: null, lastSeen: 0 };
      tenant.users.set(conn.user, user);
    }
    user.conns = fewAdd(user.conns, conn.connId);
    return state;
  }

  /** Removes a connection from every room and from its user; `at` becomes the user's lastSeen. */
  private drop(state: ConnState, at: number): void {
    for (const room of fewList(state.rooms)) this.leaveRoom(state, room, at);
    this.conns.delete(state.conn.connId);
    const tenant = this.tenants.get(state.conn.tenant);
    const user = tenant?.users.get(state.conn.user);
    if (tenant === undefined || user === undefined) return;
    user.conns = fewDelete(user.conns, state.conn.connId);
    user.lastSeen = Math.max(user.lastSeen, at);
  }

  /** Takes a connection out of a room; true when it was the user's last one there. */
  private leaveRoom(state: ConnState, roomName: string, at: number): boolean {
    state.rooms = fewDelete(state.rooms, roomName);
    const room = this.tenants.get(state.conn.tenant)?.rooms.get(roomName);
    const ids = room?.members.get(state.conn.user);
    if (room === undefined || ids === undefined) return false;
    const rest = fewDelete(ids, state.conn.connId);
    if (rest !== null) {
      room.members.set(state.conn.user, rest);
      return false;
    }
    room.members.delete(state.conn.user);
    room.info.delete(state.conn.user);
    this.remember(room, state.conn.user, at);
    const hook = this.hooks.get(`${state.conn.tenant}/${roomName}`);
    if (hook?.users.has(state.conn.user) === true) hook.pend.set(state.conn.user, at);
    return true;
  }

  /** Records a recent leaver, keeping at most `recentMax` (the oldest is forgotten first). */
  private remember(room: RoomState, user: string, at: number): void {
    room.recent.set(user, at);
    if (room.recent.size <= this.options.recentMax) return;
    let oldestUser: string | undefined;
    let oldest = Infinity;
    for (const [name, seen] of room.recent) {
      if (seen < oldest) {
        oldest = seen;
        oldestUser = name;
      }
    }
    if (oldestUser !== undefined) room.recent.delete(oldestUser);
  }

  private pruneRecent(room: RoomState, now: number): void {
    for (const [user, seen] of room.recent) {
      if (now - seen > this.options.recentMs) room.recent.delete(user);
    }
  }

  /** Expires the stale connections of one room's members. */
  private expireRoom(room: RoomState): void {
    for (const ids of [...room.members.values()]) this.expireIds(ids);
  }

  /** Expires the stale connections among `ids`. */
  private expireIds(ids: Few<string>): void {
    const now = this.now();
    for (const id of fewList(ids)) {
      const state = this.conns.get(id);
      if (state !== undefined && this.expired(state, now)) this.drop(state, state.beat);
    }
  }

  /** Forgets an empty room, and its tenant when nothing is left in it. */
  private collect(tenantName: string, roomName: string): void {
    const tenant = this.tenants.get(tenantName);
    const room = tenant?.rooms.get(roomName);
    if (tenant === undefined || room === undefined) return;
    if (room.members.size === 0 && room.recent.size === 0) tenant.rooms.delete(roomName);
    if (tenant.rooms.size === 0 && tenant.users.size === 0) this.tenants.delete(tenantName);
  }

  private tenant(name: string): TenantState {
    let tenant = this.tenants.get(name);
    if (tenant === undefined) {
      tenant = { rooms: new Map(), users: new Map() };
      this.tenants.set(name, tenant);
    }
    return tenant;
  }

  private room(tenant: TenantState, name: string): RoomState {
    let room = tenant.rooms.get(name);
    if (room === undefined) {
      room = { members: new Map(), info: new Map(), recent: new Map() };
      tenant.rooms.set(name, room);
    }
    return room;
  }
}

function checkTenant(ref: RoomRef, conn: PresenceConn): void {
  if (ref.tenant !== conn.tenant) {
    throw new EngineError('presence', 'invalid', `connection ${conn.connId} of tenant "${conn.tenant}" cannot use a room of tenant "${ref.tenant}"`);
  }
}
