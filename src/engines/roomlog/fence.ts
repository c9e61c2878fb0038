/**
 * Fencing bookkeeping for a RoomLog whose state lives in a server that can lose its newest writes (Redis failing
 * over to a replica that lagged; roomlog.ts `FenceSource`): which rooms were checked against the durable log since
 * the client last (re)connected and how long ago, one fence at a time per room, and the fence itself (probe, read
 * what the log lacks, apply). The Redis scripts that probe and apply are the RoomLog's (redis-lua.ts FENCE_LUA).
 */
import { roomKey, type RoomMessage, type RoomRef } from '../types.js';
import type { FenceSource } from './roomlog.js';

/** What one fence script call found: the room's seq before it, and whether it is (probe) or was (apply) below the floor. */
export interface FenceStep {
  readonly cur: number;
  readonly behind: boolean;
}

/**
 * Runs the fence script: `entries` undefined probes (changes nothing unless the room has no state, which is created
 * at the floor), an array applies (moves the seq to the floor, restoring those of `entries` above the room's seq).
 */
export type FenceScript = (ref: RoomRef, floor: RoomMessage, entries: readonly RoomMessage[] | undefined) => Promise<FenceStep>;

export const defaultFenceTtlMs = 30_000;

export class RoomFences {
  private generation = 0;
  /** Room key → when it was last fenced and under which connection generation; insertion order is age order. */
  private readonly checked = new Map<string, { generation: number; at: number }>();
  private readonly running = new Map<string, Promise<void>>();
  /** Room key → the lowest seq whose idempotency id the next fence restores even if the seq is not behind (`forget`). */
  private readonly restoreFrom = new Map<string, number>();

  constructor(
    private readonly source: FenceSource,
    private readonly script: FenceScript,
    /** Most messages restored by one fence (the recent window's size). */
    private readonly maxRestore: number,
    /** Most rooms remembered as fenced; the oldest is forgotten (and checked again at its next append) beyond it. */
    private readonly maxRooms = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The client (re)connected, possibly to another server: every room is checked again before its next append. */
  reconnected(): void {
    this.generation++;
  }

  /**
   * The room is checked again before its next append. `restoreFrom`: the durable log refused this seq because another
   * message holds it, so that message's idempotency id (and those after it) may be missing too: the next fence
   * restores them from there, whether or not the room's seq is behind.
   */
  forget(ref: RoomRef, restoreFrom?: number): void {
    const key = roomKey(ref);
    this.checked.delete(key);
    if (restoreFrom !== undefined) this.restoreFrom.set(key, Math.min(restoreFrom, this.restoreFrom.get(key) ?? restoreFrom));
  }

  /** Undefined when the room is fenced (the fast path: one map lookup); else the fence, shared by concurrent appends. */
  check(ref: RoomRef): Promise<void> | undefined {
    const key = roomKey(ref);
    const last = this.checked.get(key);
    if (last !== undefined && last.generation === this.generation && this.now() - last.at < (this.source.ttlMs ?? defaultFenceTtlMs)) return undefined;
    let run = this.running.get(key);
    if (run === undefined) {
      // Marked with the generation and time it started under: a reconnect while it runs means another check.
      const generation = this.generation;
      const at = this.now();
      run = this.fence(ref)
        .then(() => this.mark(key, generation, at))
        .finally(() => this.running.delete(key));
      this.running.set(key, run);
    }
    return run;
  }

  private mark(key: string, generation: number, at: number): void {
    this.checked.delete(key);
    this.checked.set(key, { generation, at });
    if (this.checked.size > this.maxRooms) {
      const oldest = this.checked.keys().next();
      if (oldest.done !== true) this.checked.delete(oldest.value);
    }
  }

  private async fence(ref: RoomRef): Promise<void> {
    const key = roomKey(ref);
    const hint = this.restoreFrom.get(key);
    await this.run(ref, hint);
    // Kept when the fence failed, so the next one restores from there.
    if (this.restoreFrom.get(key) === hint) this.restoreFrom.delete(key);
  }

  private async run(ref: RoomRef, hint: number | undefined): Promise<void> {
    const floor = await this.source.floor(ref);
    if (floor === null) return;
    const probe = await this.script(ref, floor, undefined);
    if (!probe.behind && (hint === undefined || hint > floor.seq)) return;
    const from = Math.max(Math.min(probe.cur + 1, hint ?? Infinity), floor.seq - this.maxRestore + 1, 1);
    let entries: RoomMessage[] = [];
    try {
      entries = await this.source.range(ref, from, floor.seq);
    } catch {
      // Restoring is best effort: the seq moves past the floor all the same, and without the window recovery reads history.
    }
    const applied = await this.script(ref, floor, entries);
    if (applied.behind) {
      const restored = entries.filter((m) => m.seq > applied.cur && m.seq <= floor.seq).length;
      this.source.onMoved?.(ref, applied.cur, floor.seq, restored);
    }
  }
}
