import type { Json, RoomMessage, RoomPosition, RoomRef } from '../types.js';

/** What the publisher supplies; the RoomLog assigns seq, epoch and ts. */
export interface PublishInput {
  readonly from: string;
  readonly data: Json;
  /** Client idempotency id; scoped to (room, from). */
  readonly idem?: string;
  /** Event name of the message (protocol/names.ts); the message has no `event` key when absent. */
  readonly event?: string;
  /** Conflation key of the message (protocol/wire.ts); the message has no `key` key when absent. */
  readonly key?: string;
  /**
   * The room's publish cap: appends the room accepts per one-second window (wall-clock seconds of the log's clock,
   * shared by every node). An append over it rejects with EngineError `full`; a duplicate is answered as a
   * duplicate whatever the rate. Absent or 0: no cap.
   */
  readonly maxPerSecond?: number;
}

export interface AppendResult {
  readonly message: RoomMessage;
  /** True when `idem` was seen before in this room from this sender: `message` is the first one. */
  readonly duplicate: boolean;
}

export interface RecoveryResult {
  /** Messages with seq > since, in seq order, up to the room's current position. */
  readonly messages: RoomMessage[];
  readonly position: RoomPosition;
  /**
   * False when the window no longer holds every message after `since` (or the epoch differs):
   * the caller must fall back to history or tell the client to reset.
   */
  readonly complete: boolean;
}

/**
 * RoomLog (sequencer): per-room contiguous seq + epoch, idempotency ids, and a bounded recent window.
 *
 * Contract (test/conformance/roomlog.suite.ts):
 * - `append` is atomic per room: it either returns the first message published with the same
 *   (from, idem) within the idempotency window (`duplicate: true`, nothing new stored), or assigns
 *   seq = previous + 1 (starting at 1), stamps `ts` and the room's epoch, and appends to the window.
 *   The message carries `event` and `key` exactly when the input has them (no such field otherwise), in every read.
 *   Concurrent appends to one room get distinct, gap-free seqs. With `maxPerSecond`, an append beyond that many
 *   in the room's current second rejects with EngineError `full` and assigns nothing (no seq is used up).
 * - The recent window keeps at least the newest `windowSize` messages younger than `windowMs`.
 * - `since(ref, seq, epoch)` returns every message after `seq` if the window still has them all and
 *   the epoch matches, with `complete: true`; otherwise `complete: false` with whatever it has.
 * - `position` returns the current last seq and epoch (seq 0 and a fresh epoch for an unknown room).
 * - An epoch never changes while the RoomLog keeps its state; a new epoch is minted only when a room's
 *   sequence starts over (the state was lost), unless `seed` says where it left off.
 */
export interface RoomLog {
  readonly kind: string;
  append(ref: RoomRef, input: PublishInput): Promise<AppendResult>;
  since(ref: RoomRef, seq: number, epoch: string): Promise<RecoveryResult>;
  /** Messages with seq in [from, to] still in the window (for gap repair), in order. */
  range(ref: RoomRef, from: number, to: number): Promise<RoomMessage[]>;
  position(ref: RoomRef): Promise<RoomPosition>;
  /**
   * The durable log refused `message`, which this log sequenced, because another message already holds its seq
   * (the sequence fell behind, e.g. a Redis replica promoted before it had the last increments). The log
   * forgets the message's idempotency id (a retry is sequenced anew, not handed the refused seq again), drops
   * recent-window entries that may hold it, and moves the room's sequence past the durable log's before the
   * next append. Optional: a log whose state cannot fall behind the durable log (in-process) has none.
   */
  refused?(message: RoomMessage): Promise<void>;
  /** Whether appends can succeed now (connected), for readiness: every publish needs the sequencer. */
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

export interface RoomLogOptions {
  /** Newest messages kept per room for recovery. Default 1000. */
  windowSize: number;
  /** Max age of window entries in ms. Default 120000. */
  windowMs: number;
  /** How long an idempotency id is remembered, ms. Default 600000. */
  idemMs: number;
  /**
   * Where a room's sequence left off when the RoomLog has no state for it (e.g. after a restart of the
   * embedded node, from permanent history), so seq continues under the same epoch instead of restarting.
   */
  seed?: (ref: RoomRef) => Promise<RoomPosition | null>;
  /**
   * With `seed`: the room's newest stored messages (ascending), to restore the recent window and the
   * idempotency records they carry, so a client retrying across a restart is still deduplicated.
   * Implementations whose state survives restarts (Redis) may ignore it.
   */
  seedRecent?: (ref: RoomRef) => Promise<RoomMessage[]>;
  /**
   * Fencing against a sequence that went backwards (a log whose state lives elsewhere and can lose its newest
   * writes: Redis failing over to a replica that lagged). When set, a room's first append after the log
   * (re)connected, and the first after `ttlMs` since the room was last fenced, first moves the room's seq up to
   * `floor(ref)` (the durable log's newest message of the room) if it is below, restoring the recent window and
   * idempotency ids of the messages in between from `range(ref, from, to)` (best effort). An in-process log
   * ignores it.
   */
  fence?: FenceSource;
}

/** Where a fence reads the room's durable truth (engines/cluster.ts builds it from JetStream and the MessageStore). */
export interface FenceSource {
  /** The room's newest durably stored message, or null when the durable side holds none. Rejects when it cannot tell. */
  floor(ref: RoomRef): Promise<RoomMessage | null>;
  /** Durably stored messages of the room with seq in [from, to] (any subset the sources can give; may reject). */
  range(ref: RoomRef, from: number, to: number): Promise<RoomMessage[]>;
  /**
   * A room stays fenced this long (ms) without a reconnect before its next append checks again: the backstop for
   * a failover the client did not report as a reconnect. Keep it well under the durable log's duplicate window
   * (JetStream: 2 minutes), inside which a reused seq is refused rather than stored. Default 30,000.
   */
  ttlMs?: number;
  /** Told each time a fence moved a room's seq (from → to) and how many messages it restored. */
  onMoved?: (ref: RoomRef, from: number, to: number, restored: number) => void;
}

export const defaultRoomLogOptions: RoomLogOptions = { windowSize: 1000, windowMs: 120_000, idemMs: 600_000 };
