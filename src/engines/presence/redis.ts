import type { ChainableCommander } from 'ioredis';
import { RedisBatch } from '../../connections/redis-batch.js';
import { openRedis, type RedisClient, type RedisConnectOptions } from '../../connections/redis.js';
import type { Json, RoomRef } from '../types.js';
import { defaultPresenceOptions, type PresenceConn, type PresenceOptions, type PresenceStore, type RoomMember, type UserPresence } from './presence.js';
import { DUE_LUA, NODE_LUA, ROOM_LUA, USER_LUA } from './redis-lua.js';
import type { SettleScope, Settled } from './settle.js';
import { EngineError } from '../errors.js';

type ScriptArg = string | number;

const ROOM = 'sbPresenceRoom';
const USER = 'sbPresenceUser';
const NODE = 'sbPresenceNode';
const DUE = 'sbPresenceDue';
/** Connection ids per heartbeat batch (one HMGET and two pipelines each). */
const BEAT_CHUNK = 500;
const SEP = '\u0000';

/** A node's registry entry for one connection. */
interface Entry {
  readonly connId: string;
  readonly tenant: string;
  readonly user: string;
  readonly rooms: string[];
}

/**
 * RedisPresenceStore: the cluster PresenceStore. Every node opens its own instance on the same Redis;
 * all state is in Redis, and every change is a Lua script on the keys of one room, one user or one node.
 *
 * Key layout (prefix `P` = RedisConnectOptions.keyPrefix, default "sb:"; `\0` separates fields):
 * - `P{tenant/room}:pres`    zset `user\0connId` → last refresh (ms) — the room's connections
 * - `P{tenant/room}:cnt`     hash user → number of live connections in the room
 * - `P{tenant/room}:recent`  zset user → lastSeen of users who left (trimmed by recentMs, recentMax)
 * - `Pu:{tenant/user}:conns` zset connId → last refresh — the user's connections on any node
 * - `Pu:{tenant/user}:seen`  lastSeen of the user's removed connections (expires recentMs after it)
 * - `P{tenant/room}:hook`    hash: users reported to webhooks, and `\0` while the room is reported occupied
 * - `P{tenant/room}:pend`    zset user → when a reported user left (removal due a grace period later)
 * - `Phooks:due`             zset `tenant\0room` → when the room is to be settled next (settle.ts)
 * - `Pn:{nodeId}:conns`      hash connId → `tenant\0user[\0room…]` — what the node registered, for
 *   `heartbeat`, `disconnect` and `removeNode`; expires 2 × ttlMs after the node's last heartbeat
 * Room and user keys expire ttlMs + recentMs after their last refresh (by then everything in them would
 * have expired and been forgotten anyway). Tenants are part of every room and user key.
 *
 * Liveness: a connection whose last refresh (connect, join or heartbeat) is older than ttlMs is gone.
 * Every script on a room or user first removes such connections (ZRANGEBYSCORE on the refresh time),
 * moving a user whose last connection went to the room's leavers with lastSeen = its last refresh, so a
 * crashed node's users go offline within the TTL without anyone cleaning up after it; Redis key expiry
 * reclaims rooms, users and registries nobody touches any more. `join`/`leave` report `changed` from
 * the room's live-connection count, atomically per room. Times are Redis TIME, one clock for all nodes.
 *
 * `heartbeat(nodeId, ids)` refreshes only ids registered by `nodeId` (via its registry), in batches of
 * 500; an id found expired is dropped from the rooms it was in (lastSeen = its last refresh) and from the
 * registry — unless this instance registered it itself (connect/join through it, not disconnected): the
 * node's heartbeat says it is alive, so it is registered again with its rooms (a join, as after an
 * expiry). That is how presence recovers after Redis lost its data or was unreachable for longer than
 * the TTL, without clients reconnecting; the instance keeps only that list of its own connections and
 * rooms locally, every answer comes from Redis. While Redis is unreachable every operation rejects.
 * `join`/`leave` with a connection of another tenant than the room throw.
 */
export class RedisPresenceStore implements PresenceStore {
  readonly kind = 'redis';
  private readonly options: PresenceOptions;
  private readonly prefix: string;
  /** Connections registered through this instance (its node's own), with their rooms: see `beat`. */
  private readonly local = new Map<string, { readonly conn: PresenceConn; readonly rooms: Set<string> }>();
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    options: Partial<PresenceOptions> = {},
    keyPrefix = 'sb:',
  ) {
    this.options = { ...defaultPresenceOptions, ...options };
    if (/[{}]/.test(keyPrefix)) throw new EngineError('presence', 'invalid', `redis key prefix "${keyPrefix}" must not contain { or }`);
    this.prefix = keyPrefix;
    client.defineCommand(ROOM, { numberOfKeys: 5, lua: ROOM_LUA });
    client.defineCommand(DUE, { numberOfKeys: 1, lua: DUE_LUA });
    client.defineCommand(USER, { numberOfKeys: 2, lua: USER_LUA });
    client.defineCommand(NODE, { numberOfKeys: 1, lua: NODE_LUA });
  }

  async connect(conn: PresenceConn): Promise<void> {
    const p = this.pipeline();
    this.remember(conn);
    this.nodeCall(p, conn.nodeId, 'add', conn.connId, conn.tenant, conn.user, '');
    this.userCall(p, conn.tenant, conn.user, 'add', '', conn.connId);
    await run(p);
  }

  async disconnect(conn: PresenceConn): Promise<void> {
    this.ensureOpen();
    this.local.delete(conn.connId);
    const value = await this.client.hget(this.nodeKey(conn.nodeId), conn.connId);
    const entry = value === null ? { ...conn, rooms: [] } : parseEntry(conn.connId, value);
    const p = this.pipeline();
    this.drop(p, entry, 'now');
    const reg = this.nodeKey(conn.nodeId);
    p.add(reg, (q) => q.hdel(reg, conn.connId));
    await run(p);
  }

  async join(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    checkTenant(ref, conn);
    const p = this.pipeline();
    this.remember(conn).add(ref.room);
    // Registry first: if a later step fails, it lists a room the connection may not be in (harmless).
    this.nodeCall(p, conn.nodeId, 'add', conn.connId, conn.tenant, conn.user, ref.room);
    this.userCall(p, conn.tenant, conn.user, 'add', '', conn.connId);
    this.roomCall(p, ref, 'join', '', conn.user, member(conn.user, conn.connId));
    // The tenant's room index (for `rooms`): rooms are taken out when read empty.
    const rooms = this.roomsKey(conn.tenant);
    p.add(rooms, (q) => q.sadd(rooms, ref.room));
    p.add(rooms, (q) => q.pexpire(rooms, this.keyTtl()));
    if (conn.info !== undefined) {
      // The user's latest info, beside the room's keys (same hash slot); it lives as long as they do.
      const infoKey = `${this.roomBase(ref)}:info`;
      const info = JSON.stringify(conn.info);
      p.add(infoKey, (q) => q.hset(infoKey, conn.user, info));
      p.add(infoKey, (q) => q.pexpire(infoKey, this.keyTtl()));
    }
    const replies = await run(p);
    return { changed: replies[2] === 1 };
  }

  async leave(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }> {
    checkTenant(ref, conn);
    const p = this.pipeline();
    this.local.get(conn.connId)?.rooms.delete(ref.room);
    this.roomCall(p, ref, 'leave', '', member(conn.user, conn.connId), 'now');
    this.nodeCall(p, conn.nodeId, 'unjoin', conn.connId, '', '', ref.room);
    const replies = await run(p);
    const changed = replies[0] === 1;
    // The user's info goes with their last connection (an expired one's stays until the key expires).
    if (changed) await this.client.hdel(`${this.roomBase(ref)}:info`, conn.user);
    return { changed };
  }

  async heartbeat(nodeId: string, connIds: readonly string[]): Promise<void> {
    this.ensureOpen();
    if (connIds.length === 0) return;
    const now = await this.now();
    for (let i = 0; i < connIds.length; i += BEAT_CHUNK) {
      await this.beat(nodeId, connIds.slice(i, i + BEAT_CHUNK), now);
    }
  }

  async members(ref: RoomRef): Promise<RoomMember[]> {
    const p = this.pipeline();
    this.roomCall(p, ref, 'members', '');
    const [reply] = await run(p);
    const [pres, recent] = reply as [string[], string[]];
    const online = new Map<string, { connections: number; lastSeen: number }>();
    for (let i = 0; i + 1 < pres.length; i += 2) {
      const user = pres[i]!.slice(0, pres[i]!.indexOf(SEP));
      const beat = Number(pres[i + 1]);
      const m = online.get(user);
      if (m === undefined) online.set(user, { connections: 1, lastSeen: beat });
      else online.set(user, { connections: m.connections + 1, lastSeen: Math.max(m.lastSeen, beat) });
    }
    const sorted = [...online].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const infos = sorted.length > 0 ? await this.client.hmget(`${this.roomBase(ref)}:info`, ...sorted.map(([user]) => user)) : [];
    const result: RoomMember[] = sorted.map(([user, m], i) => {
      const info = infos[i];
      return info != null ? { user, online: true, ...m, info: JSON.parse(info) as Json } : { user, online: true, ...m };
    });
    for (let i = 0; i + 1 < recent.length; i += 2) {
      const user = recent[i]!;
      if (!online.has(user)) result.push({ user, online: false, connections: 0, lastSeen: Number(recent[i + 1]) });
    }
    return result;
  }

  async rooms(tenant: string): Promise<string[]> {
    this.ensureOpen();
    const names = await this.client.smembers(this.roomsKey(tenant));
    if (names.length === 0) return [];
    const p = new RedisBatch(this.client);
    for (const room of names) {
      const cnt = `${this.roomBase({ tenant, room })}:cnt`;
      p.add(cnt, (q) => q.hlen(cnt));
    }
    const counts = await run(p);
    const empty = names.filter((_, i) => counts[i] === 0);
    if (empty.length > 0) await this.client.srem(this.roomsKey(tenant), ...empty);
    return names.filter((_, i) => counts[i] !== 0).sort();
  }

  private roomsKey(tenant: string): string {
    return `${this.prefix}t:{${tenant}}:rooms`;
  }

  async user(tenant: string, user: string): Promise<UserPresence> {
    const p = this.pipeline();
    this.userCall(p, tenant, user, 'read', '');
    const [reply] = await run(p);
    const [count, lastSeen] = reply as [number, string];
    return { user, online: count > 0, lastSeen: Number(lastSeen), connections: count };
  }

  async removeNode(nodeId: string): Promise<void> {
    this.ensureOpen();
    for (const [id, { conn }] of this.local) if (conn.nodeId === nodeId) this.local.delete(id);
    const key = this.nodeKey(nodeId);
    let cursor = '0';
    do {
      const [next, flat] = await this.client.hscan(key, cursor, 'COUNT', BEAT_CHUNK);
      const p = this.pipeline();
      for (let i = 0; i + 1 < flat.length; i += 2) this.drop(p, parseEntry(flat[i]!, flat[i + 1]!), 'now');
      await run(p);
      cursor = next;
    } while (cursor !== '0');
    await this.client.del(key);
  }

  /** Connection state, for readiness checks. */
  health(): { ok: boolean; detail?: string } {
    const status = this.client.status;
    return status === 'ready' ? { ok: true } : { ok: false, detail: `redis ${status}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through: drop the socket
      }
    }
    this.client.disconnect();
  }

  /**
   * One heartbeat batch: refresh the live connections, drop the ones found expired. A listed connection
   * this instance registered itself (its node's own, so alive) whose registry entry or user entry is gone
   * — Redis lost its data, or was unreachable for longer than the TTL — is registered again with its
   * rooms, so presence recovers without the clients reconnecting.
   */
  private async beat(nodeId: string, ids: string[], now: number): Promise<void> {
    const reg = this.nodeKey(nodeId);
    const values = await this.client.hmget(reg, ...ids);
    const entries: Entry[] = [];
    const lost: string[] = [];
    values.forEach((v, i) => {
      if (v !== null) entries.push(parseEntry(ids[i]!, v));
      else lost.push(ids[i]!);
    });
    const byUser = groupBy(entries, (e) => [`${e.tenant}${SEP}${e.user}`]);
    const first = this.pipeline();
    for (const group of byUser.values()) {
      this.userCall(first, group[0]!.tenant, group[0]!.user, 'beat', now, ...group.map((e) => e.connId));
    }
    const dead = new Set((await run(first)).flat() as string[]);
    const second = this.pipeline();
    const live = entries.filter((e) => !dead.has(e.connId));
    for (const [key, group] of groupBy(live, (e) => e.rooms.map((r) => `${e.tenant}${SEP}${r}`))) {
      const room = key.slice(key.indexOf(SEP) + 1);
      this.roomCall(second, { tenant: group[0]!.tenant, room }, 'beat', now, ...group.map((e) => member(e.user, e.connId)));
    }
    for (const e of entries) {
      if (!dead.has(e.connId)) continue;
      const mine = this.local.get(e.connId);
      if (mine !== undefined && mine.conn.nodeId === nodeId) lost.push(e.connId);
      else {
        this.drop(second, e, 'score');
        second.add(reg, (q) => q.hdel(reg, e.connId));
      }
    }
    for (const id of lost) {
      const mine = this.local.get(id);
      if (mine === undefined || mine.conn.nodeId !== nodeId) continue;
      const { conn, rooms } = mine;
      this.nodeCall(second, nodeId, 'add', id, conn.tenant, conn.user, '');
      this.userCall(second, conn.tenant, conn.user, 'add', '', id);
      for (const room of rooms) {
        this.nodeCall(second, nodeId, 'add', id, conn.tenant, conn.user, room);
        this.roomCall(second, { tenant: conn.tenant, room }, 'join', '', conn.user, member(conn.user, id));
      }
    }
    second.add(reg, (q) => q.pexpire(reg, this.registryTtl()));
    await run(second);
  }

  /** Records a connection of this instance's node locally; returns its room set. */
  private remember(conn: PresenceConn): Set<string> {
    let mine = this.local.get(conn.connId);
    if (mine === undefined) {
      mine = { conn, rooms: new Set() };
      this.local.set(conn.connId, mine);
    }
    return mine.rooms;
  }

  /** Queues the removal of a connection from its rooms and its user. */
  private drop(p: RedisBatch, e: Entry, at: 'now' | 'score'): void {
    for (const room of e.rooms) this.roomCall(p, { tenant: e.tenant, room }, 'leave', '', member(e.user, e.connId), at);
    this.userCall(p, e.tenant, e.user, 'remove', '', e.connId);
  }

  private roomBase(ref: RoomRef): string {
    return `${this.prefix}{${ref.tenant}/${ref.room}}`;
  }

  private roomCall(p: RedisBatch, ref: RoomRef, op: string, now: number | '', ...rest: ScriptArg[]): void {
    const base = this.roomBase(ref);
    const { ttlMs, recentMs, recentMax } = this.options;
    queue(p, ROOM, [
      `${base}:pres`,
      `${base}:cnt`,
      `${base}:recent`,
      `${base}:hook`,
      `${base}:pend`,
      op,
      now,
      ttlMs,
      recentMs,
      recentMax,
      this.keyTtl(),
      ...rest,
    ]);
  }

  private userCall(p: RedisBatch, tenant: string, user: string, op: string, now: number | '', ...rest: ScriptArg[]): void {
    const base = `${this.prefix}u:{${tenant}/${user}}`;
    const { ttlMs, recentMs } = this.options;
    queue(p, USER, [`${base}:conns`, `${base}:seen`, op, now, ttlMs, recentMs, this.keyTtl(), ...rest]);
  }

  private nodeCall(p: RedisBatch, nodeId: string, op: string, ...rest: ScriptArg[]): void {
    queue(p, NODE, [this.nodeKey(nodeId), op, this.registryTtl(), ...rest]);
  }

  async settleJoin(ref: RoomRef, user: string, scope: SettleScope): Promise<Settled> {
    const p = this.pipeline();
    this.roomCall(p, ref, 'hjoin', '', user, scope.members ? '1' : '0');
    const [reply] = await run(p);
    const [occupied, added, at] = reply as [number, number, string];
    return { ref, at: Number(at), occupied: occupied === 1, added: added === 1 ? [user] : [], removed: [], vacated: false };
  }

  async watch(ref: RoomRef, delayMs: number): Promise<void> {
    this.ensureOpen();
    await this.dueCall('watch', dueMember(ref), Math.max(0, Math.round(delayMs)));
  }

  async settleDue(scope: (ref: RoomRef) => SettleScope | null, limit: number): Promise<Settled[]> {
    this.ensureOpen();
    const claimed = (await this.dueCall('claim', limit, SETTLE_LEASE_MS)) as string[];
    const lease = claimed.pop()!;
    const out: Settled[] = [];
    for (const m of claimed) {
      const ref = parseDueMember(m);
      const s = scope(ref);
      let next = 0;
      if (s !== null) {
        const p = this.pipeline();
        this.roomCall(p, ref, 'hsettle', '', Math.max(0, Math.round(s.graceMs)), SETTLE_USERS, s.members ? '1' : '0');
        const [reply] = await run(p);
        const [removed, vacated, nextAt, at, occupied] = reply as [string[], number, string, string, number];
        next = Number(nextAt);
        out.push({ ref, at: Number(at), occupied: occupied === 1, added: [], removed, vacated: vacated === 1 });
      }
      await this.dueCall('finish', m, lease, next);
    }
    return out;
  }

  private async dueCall(op: string, ...rest: ScriptArg[]): Promise<unknown> {
    const key = `${this.prefix}hooks:due`;
    const commands = this.client as unknown as Record<string, (...a: ScriptArg[]) => Promise<unknown>>;
    return commands[DUE]!(key, op, '', ...rest);
  }

  private nodeKey(nodeId: string): string {
    return `${this.prefix}n:{${nodeId}}:conns`;
  }

  private keyTtl(): number {
    return Math.max(1, this.options.ttlMs + this.options.recentMs);
  }

  private registryTtl(): number {
    return Math.max(1, 2 * this.options.ttlMs);
  }

  /** Commands sent together (one pipeline; per hash slot on a Cluster). */
  private pipeline(): RedisBatch {
    this.ensureOpen();
    return new RedisBatch(this.client);
  }

  /** Redis TIME in ms. */
  private async now(): Promise<number> {
    const [seconds, micros] = await this.client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  private ensureOpen(): void {
    if (this.closed) throw new EngineError('presence', 'closed', 'presence store is closed');
  }
}

/** A room being settled is not settled by another caller for this long (unless finished sooner), ms. */
const SETTLE_LEASE_MS = 30_000;
/** Users one settle call reports removed at most (the room is settled again at once for the rest). */
const SETTLE_USERS = 1000;

function dueMember(ref: RoomRef): string {
  return `${ref.tenant}${SEP}${ref.room}`;
}

function parseDueMember(m: string): RoomRef {
  const i = m.indexOf(SEP);
  return { tenant: m.slice(0, i), room: m.slice(i + 1) };
}

function member(user: string, connId: string): string {
  return `${user}${SEP}${connId}`;
}

function parseEntry(connId: string, value: string): Entry {
  const [tenant = '', user = '', ...rooms] = value.split(SEP);
  return { connId, tenant, user, rooms };
}

function groupBy(entries: readonly Entry[], keys: (e: Entry) => string[]): Map<string, Entry[]> {
  const groups = new Map<string, Entry[]>();
  for (const e of entries) {
    for (const key of keys(e)) {
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [e]);
      else group.push(e);
    }
  }
  return groups;
}

/** Queues a command registered with `defineCommand` (its first argument is its first key). */
function queue(p: RedisBatch, name: string, args: ScriptArg[]): void {
  p.add(String(args[0]), (q: ChainableCommander) => {
    const commands = q as unknown as Record<string, (...a: ScriptArg[]) => unknown>;
    commands[name]!(...args);
  });
}

/** Executes a batch; rejects with the first failed command's error. */
function run(p: RedisBatch): Promise<unknown[]> {
  return p.run();
}

function checkTenant(ref: RoomRef, conn: PresenceConn): void {
  if (ref.tenant !== conn.tenant) {
    throw new EngineError('presence', 'invalid', `connection ${conn.connId} of tenant "${conn.tenant}" cannot use a room of tenant "${ref.tenant}"`);
  }
}

/** Connects to Redis and returns a PresenceStore on it (rejects with a clear error if unreachable). */
export async function openRedisPresence(o: RedisConnectOptions, options: Partial<PresenceOptions>): Promise<RedisPresenceStore> {
  const client = await openRedis(o, 'presence');
  try {
    return new RedisPresenceStore(client, options, o.keyPrefix ?? 'sb:');
  } catch (err) {
    client.disconnect();
    throw err;
  }
}
