/**
 * Coalesced output. Frames queued to a connection during one event-loop turn are written to its socket
 * in one go (cork → writes → uncork, i.e. one writev) by a single flush scheduled with setImmediate.
 * A socket write costs ~9 µs of kernel time here, so one write per member per tick instead of one per
 * message is what lets a hot room reach millions of deliveries per second.
 *
 * Backpressure, two bounds:
 * - hard: a sink whose queued bytes plus the socket's unsent bytes pass `maxBufferedBytes` is reported
 *   slow at once, so no connection ever holds more than that;
 * - soft: a sink whose socket keeps more than `slow.bytes` unsent for longer than `slow.graceMs` (checked
 *   by `checkSlow`, called from the heartbeat sweep) is reported slow: it reads slower than it is sent
 *   to, while a healthy reader that got a burst drains in milliseconds and is left alone.
 * A slow sink's queue is dropped; its owner must close it.
 *
 * What is handed to the socket cannot be taken back (Node buffers it, then the kernel), so the outbox
 * hands a socket at most about `SOCKET_HIGH_WATER` bytes beyond what the kernel took, and keeps the rest
 * in the sink's queue until the socket drains. A slow consumer's backlog therefore sits in the queue,
 * where cutting it off drops it, and its close frame (4003) waits behind at most that much, not behind
 * megabytes: a client that reads again gets the close and learns why.
 *
 * A sink that opted in to batch frames (`batch`) has each write's run of frames joined by the batcher
 * (gateway/batch.ts): several queued frames, one WebSocket frame.
 */
import type { Socket } from 'node:net';
import type { FrameBatcher } from './batch.js';

/** Unsent bytes a socket may hold in Node's buffer before the outbox waits for 'drain'. */
export const SOCKET_HIGH_WATER = 64 * 1024;

export interface OutboxSink {
  readonly socket: Socket;
  /** Frames waiting for the next flush (null when empty, to keep idle connections small). */
  queue: Buffer[] | null;
  queuedBytes: number;
  /** Set when the sink is closed or cut off: queued output is dropped. */
  dead: boolean;
  /** When its unsent bytes went over the soft bound (0 while under it). */
  overSince: number;
  /** Waiting for the socket's 'drain': its queue is flushed then, not on the next tick. */
  blocked: boolean;
  /** Opted in to batch frames (protocol v1's `connect.batch`): a write of several frames is one WebSocket frame. */
  readonly batch?: boolean;
  onSlow(): void;
  /** Told when its whole queue has been handed to the socket and the socket is not waiting for 'drain'. */
  drained?(): void;
}

/**
 * Unsent bytes (queued + the socket's) past which a member of a `conflate` or `drop` room is behind (rooms/room.ts):
 * a burst a healthy reader takes in one go stays under it; a reader that stopped reading passes it.
 */
export const BEHIND_BYTES = 256 * 1024;

/** A sink that rooms wait on when it fell behind (the connections of every wire protocol). */
export interface BehindSink extends OutboxSink {
  /** Rooms waiting for it to read again; null: none. */
  drainWaiters: Array<() => void> | null;
  /** The close code sent; 0 while open. */
  closeCode: number;
}

/**
 * The one implementation of RoomMember.behind / whenDrained and OutboxSink.drained (rooms/room.ts), for every
 * protocol's connections: behind = its socket takes no more (the outbox waits for 'drain') and its unsent output is
 * past `outbox.behindBytes`, so a reader that keeps up takes a burst of any size and is never behind.
 */
export const behindSink = {
  behind(s: OutboxSink, outbox: Outbox): boolean {
    return s.blocked && s.queuedBytes + s.socket.writableLength > outbox.behindBytes;
  },
  whenDrained(s: BehindSink, fn: () => void): void {
    (s.drainWaiters ??= []).push(fn);
  },
  drained(s: BehindSink): void {
    const waiters = s.drainWaiters;
    if (waiters === null || s.dead || s.closeCode !== 0) return;
    s.drainWaiters = null;
    for (const fn of waiters) fn();
  },
};

export class Outbox {
  private dirty: OutboxSink[] = [];
  private scheduled = false;
  private readonly flushBound = () => this.flush();
  /** Unsent bytes past which a sink is behind (rooms/room.ts `behind`): BEHIND_BYTES, or half the soft bound if less. */
  readonly behindBytes: number;
  /** Bytes handed to sockets since the last report to `onWrite`. */
  private wireBytes = 0;

  constructor(
    private readonly maxBufferedBytes: number,
    /** Socket writes and the bytes they carried, reported once per flush (and per flush before a close). */
    private readonly onWrite: (writes: number, bytes: number) => void,
    private readonly slow: { bytes: number; graceMs: number } = { bytes: Infinity, graceMs: Infinity },
    private readonly batcher: FrameBatcher | null = null,
  ) {
    this.behindBytes = Math.min(BEHIND_BYTES, Math.floor(slow.bytes / 2));
  }

  enqueue(sink: OutboxSink, frame: Buffer): void {
    if (sink.dead) return;
    if (sink.queue === null) {
      sink.queue = [frame];
      if (!sink.blocked) this.markDirty(sink);
    } else {
      sink.queue.push(frame);
    }
    sink.queuedBytes += frame.length;
    if (sink.queuedBytes + sink.socket.writableLength > this.maxBufferedBytes) this.markSlow(sink);
  }

  private markSlow(sink: OutboxSink): void {
    sink.dead = true;
    sink.queue = null;
    sink.queuedBytes = 0;
    sink.onSlow();
  }

  private markDirty(sink: OutboxSink): void {
    this.dirty.push(sink);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /**
   * Soft bound, from the sweep: reports the sink slow when its unsent bytes (queued + the socket's) have
   * stayed over `slow.bytes` for `slow.graceMs`.
   */
  checkSlow(sink: OutboxSink, now: number): void {
    if (sink.dead) return;
    // Safety net: a drained socket whose 'drain' was not seen must not hold its queue forever.
    if (sink.blocked && sink.socket.writableLength === 0 && !sink.socket.writableNeedDrain) this.unblock(sink);
    const unsent = sink.queuedBytes + sink.socket.writableLength;
    if (unsent <= this.slow.bytes) sink.overSince = 0;
    else if (sink.overSince === 0) sink.overSince = now;
    else if (now - sink.overSince >= this.slow.graceMs) this.markSlow(sink);
  }

  /**
   * Writes one sink's queue: up to about `SOCKET_HIGH_WATER` unsent bytes in the socket, the rest stays
   * queued until 'drain'. `all` writes the whole queue (before a close, so the close frame follows it).
   * Returns whether anything was written.
   */
  flushSink(sink: OutboxSink, all = false): boolean {
    const queue = sink.queue;
    if (queue === null) return false;
    const socket = sink.socket;
    if (sink.dead || socket.destroyed) {
      sink.queue = null;
      sink.queuedBytes = 0;
      return false;
    }
    if (sink.blocked && !all) return false;
    // Batches of about SOCKET_HIGH_WATER bytes while the kernel takes them as fast as they come (a
    // healthy reader gets everything in this flush); whatever the socket cannot take now stays queued.
    let n = 0;
    let bytes = 0;
    while (n < queue.length) {
      let room = all ? Infinity : SOCKET_HIGH_WATER - socket.writableLength;
      if (room <= 0) break;
      const start = n;
      const before = bytes;
      while (n < queue.length && room > 0) {
        room -= queue[n]!.length;
        bytes += queue[n]!.length;
        n++;
      }
      if (sink.batch === true && this.batcher !== null && n - start > 1) {
        this.wireBytes += this.batcher.write(socket, queue, start, n);
        continue;
      }
      this.wireBytes += bytes - before;
      if (n - start === 1) {
        socket.write(queue[start]!);
      } else {
        socket.cork();
        for (let i = start; i < n; i++) socket.write(queue[i]!);
        socket.uncork();
      }
    }
    if (all && n > 0) this.report(1);
    if (n === 0) {
      this.block(sink);
      return false;
    }
    if (n === queue.length) {
      sink.queue = null;
      sink.queuedBytes = 0;
      sink.drained?.();
    } else {
      sink.queue = queue.slice(n);
      sink.queuedBytes -= bytes;
      this.block(sink);
    }
    if (sink.queuedBytes + socket.writableLength > this.slow.bytes) {
      if (sink.overSince === 0) sink.overSince = Date.now();
    } else {
      sink.overSince = 0;
    }
    return true;
  }

  /**
   * Waits for the socket's 'drain'. Its buffer holds at least SOCKET_HIGH_WATER (≥ the socket's
   * highWaterMark) bytes, so a write has returned false and 'drain' follows once the kernel took them.
   */
  private block(sink: OutboxSink): void {
    if (sink.blocked) return;
    sink.blocked = true;
    sink.socket.once('drain', () => this.unblock(sink));
  }

  private unblock(sink: OutboxSink): void {
    if (!sink.blocked) return;
    sink.blocked = false;
    if (sink.dead) return;
    if (sink.queue !== null) this.markDirty(sink);
    else sink.drained?.();
  }

  flush(): void {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    let writes = 0;
    for (const sink of dirty) if (this.flushSink(sink)) writes++;
    if (writes > 0) this.report(writes);
  }

  private report(writes: number): void {
    this.onWrite(writes, this.wireBytes);
    this.wireBytes = 0;
  }
}
