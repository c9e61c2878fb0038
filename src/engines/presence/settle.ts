/**
 * Settling: the cluster-wide room and member transitions a webhook reports (room occupied / vacated, member
 * added / removed), decided once for the cluster inside the PresenceStore and debounced by a grace period.
 */
import type { RoomRef } from '../types.js';

/** What to settle in a room: whether its members are reported (not only its occupancy), and the grace period. */
export interface SettleScope {
  readonly members: boolean;
  /** A member (or the room) gone for less than this is not reported removed (vacated), ms. */
  readonly graceMs: number;
}

/** The transitions one settle decided; each is decided once for the cluster (no other call returns it). */
export interface Settled {
  readonly ref: RoomRef;
  /** The store's clock when they were decided, ms. */
  readonly at: number;
  /** The room's first member anywhere: report it occupied (before `added`). */
  readonly occupied: boolean;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** The room has been empty for the grace period: report it vacated (after `removed`). */
  readonly vacated: boolean;
}

/**
 * PresenceSettling: the reported state of each watched room, kept beside its presence so that every transition
 * is decided atomically with the presence changes, once for the cluster, whichever node asks.
 *
 * Contract (test/conformance/presence-settle.suite.ts):
 * - `settleJoin(ref, user, scope)`, called after a join whose `changed` was true: reports the room occupied if it
 *   has members and was not reported occupied, and (with `scope.members`) the user added if online in the room and
 *   not reported. Concurrent calls for the same transition (from several nodes) report it once.
 * - A reported user whose last connection leaves the room — by `leave`, `disconnect`, `removeNode` or expiry after
 *   the TTL (lastSeen = their last refresh) — is reported removed by the first `settleDue` at least `graceMs` after
 *   they left if they are not back by then; a user back within the grace is never reported removed (and not added
 *   again). A reported-occupied room whose members are gone is reported vacated (after removing its reported users)
 *   once it has been empty for `graceMs`.
 * - `watch(ref, delayMs)` asks for the room to be settled by `settleDue` no earlier than `delayMs` from now (the
 *   earliest pending request wins). A watched room stays watched while it is reported occupied: it is settled again
 *   at the latest one TTL after its oldest connection's last refresh, so expired members (a crashed node's) are
 *   found without anyone leaving. `settleDue` settles at most `limit` rooms whose time came, on any instance; a room
 *   is settled by one caller at a time, and a caller that dies while settling leaves it to be settled again later.
 */
export interface PresenceSettling {
  settleJoin(ref: RoomRef, user: string, scope: SettleScope): Promise<Settled>;
  watch(ref: RoomRef, delayMs: number): Promise<void>;
  /** `scope` answers for each due room; null: the room is no longer reported (forgotten, nothing returned). */
  settleDue(scope: (ref: RoomRef) => SettleScope | null, limit: number): Promise<Settled[]>;
}

/** True when a settle decided nothing. */
export function settledNothing(s: Settled): boolean {
  return !s.occupied && !s.vacated && s.added.length === 0 && s.removed.length === 0;
}
