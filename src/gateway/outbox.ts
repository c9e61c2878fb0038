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
 */
import type { Socket } from 'node:net';

export interface OutboxSink {
  readonly socket: Socket;
  /** Frames waiting for the next flush (null when empty, to keep idle connections small). */
  queue: Buffer[] | null;
  queuedBytes: number;
  /** Set when the sink is closed or cut off: queued output is dropped. */
  dead: boolean;
  /** When its unsent bytes went over the soft bound (0 while under it). */
  overSince: number;
  onSlow(): void;
}

export class Outbox {
  private dirty: OutboxSink[] = [];
  private scheduled = false;
  private readonly flushBound = () => this.flush();

  constructor(
    private readonly maxBufferedBytes: number,
    private readonly onWrite: (writes: number) => void,
    private readonly slow: { bytes: number; graceMs: number } = { bytes: Infinity, graceMs: Infinity },
  ) {}

  enqueue(sink: OutboxSink, frame: Buffer): void {
    if (sink.dead) return;
    if (sink.queue === null) {
      sink.queue = [frame];
      this.dirty.push(sink);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flushBound);
      }
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

  /** Soft bound: reports the sink slow when its socket has stayed over `slow.bytes` for `slow.graceMs`. */
  checkSlow(sink: OutboxSink, now: number): void {
    if (sink.overSince === 0 || sink.dead) return;
    if (sink.socket.writableLength <= this.slow.bytes) sink.overSince = 0;
    else if (now - sink.overSince >= this.slow.graceMs) this.markSlow(sink);
  }

  /** Writes one sink's queue now (used before closing it, so a close frame follows its data). */
  flushSink(sink: OutboxSink): boolean {
    const queue = sink.queue;
    if (queue === null) return false;
    sink.queue = null;
    sink.queuedBytes = 0;
    if (sink.dead || sink.socket.destroyed) return false;
    if (queue.length === 1) {
      sink.socket.write(queue[0]!);
    } else {
      sink.socket.cork();
      for (const frame of queue) sink.socket.write(frame);
      sink.socket.uncork();
    }
    if (sink.socket.writableLength > this.slow.bytes) {
      if (sink.overSince === 0) sink.overSince = Date.now();
    } else {
      sink.overSince = 0;
    }
    return true;
  }

  flush(): void {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    let writes = 0;
    for (const sink of dirty) if (this.flushSink(sink)) writes++;
    if (writes > 0) this.onWrite(writes);
  }
}
