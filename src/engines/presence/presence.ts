import type { Json, RoomRef } from '../types.js';
import type { PresenceSettling } from './settle.js';

/** One live connection as presence sees it. */
export interface PresenceConn {
  readonly tenant: string;
  readonly user: string;
  /** Globally unique connection id (node id + local counter). */
  readonly connId: string;
  readonly nodeId: string;
  /**
   * What the user is shown with in rooms this connection joins (a Pusher presence channel's `user_info`);
   * `members` returns the info of the user's latest join that gave one.
   */
  readonly info?: Json;
}

export interface RoomMember {
  readonly user: string;
  readonly online: boolean;
  /** Number of live connections of this user in the room (0 when offline). */
  readonly connections: number;
  /** ms timestamp: when the user's last connection left the room, or the last heartbeat while online. */
  readonly lastSeen: number;
  /** Online members whose join gave `info` (PresenceConn.info): the latest such info. */
  readonly info?: Json;
}

export interface UserPresence {
  readonly user: string;
  readonly online: boolean;
  /** Last time a connection of the user was alive (refreshed by heartbeats), ms; 0 if never seen. */
  readonly lastSeen: number;
  /** The user's live connections, on every node (0 when offline). */
  readonly connections: number;
}

/** A change of a user's presence in a room (not of a single connection). */
export interface PresenceChange {
  readonly kind: 'join' | 'leave';
  readonly user: string;
  readonly at: number;
}

/**
 * PresenceStore: who is online, where, and when they were last seen.
 *
 * Contract (test/conformance/presence.suite.ts):
 * - A user is online while at least one of their connections is registered and not expired; `join`
 *   and `leave` report `changed: true` only on the user's first join / last leave of that room.
 * - Connections are refreshed by `heartbeat(nodeId, connIds)`; a connection not refreshed for `ttlMs`
 *   counts as gone (a crashed node's users go offline within the TTL), and its user's `lastSeen` is the
 *   time of the last refresh.
 * - `members` lists the online users of a room and the users who left it within `recentMs`, with
 *   lastSeen (and, for online users whose join gave one, the latest `info`); it never returns members of
 *   another tenant's room of the same name.
 * - `removeNode(nodeId)` drops every connection of that node at once (clean shutdown).
 * - Settling (settle.ts, its own suite): the webhook transitions, decided once for the cluster.
 */
export interface PresenceStore extends PresenceSettling {
  readonly kind: string;
  connect(conn: PresenceConn): Promise<void>;
  disconnect(conn: PresenceConn): Promise<void>;
  join(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }>;
  leave(ref: RoomRef, conn: PresenceConn): Promise<{ changed: boolean }>;
  heartbeat(nodeId: string, connIds: readonly string[]): Promise<void>;
  members(ref: RoomRef): Promise<RoomMember[]>;
  user(tenant: string, user: string): Promise<UserPresence>;
  /**
   * Rooms of the tenant that may have online members now: every room with a member online is listed (a room
   * whose members all expired or left may still be, until it is read; `members` tells who is there). Sorted.
   */
  rooms(tenant: string): Promise<string[]>;
  removeNode(nodeId: string): Promise<void>;
  /** Whether the store can be written now (connected), for readiness: every `connect` registers here. */
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

export interface PresenceOptions {
  /** A connection not refreshed for this long is gone. Default 45000. */
  ttlMs: number;
  /** Users who left a room within this window are listed offline with lastSeen. Default 86400000. */
  recentMs: number;
  /** At most this many recent leavers are kept per room. Default 100. */
  recentMax: number;
}

export const defaultPresenceOptions: PresenceOptions = { ttlMs: 45_000, recentMs: 86_400_000, recentMax: 100 };
