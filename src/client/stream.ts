/**
 * One room's message stream on its way to the app: the reorder buffer (order, dedupe), gap repair from
 * history, and the decisions that end in a `reset` (the server could not recover, the epoch changed, or
 * history cannot fill a gap). Knows nothing about joining or publishing (room.ts).
 */
import type { SwitchboardClientError } from './errors.js';
import { ReorderBuffer } from './reorder.js';
import type { OutRequest, ReplyTo, RequestHandlers, RequestType } from './requests.js';
import type { Message, Position, ResetEvent } from './types.js';

/** Attempts at a gap (history errors, or history without the missing messages) before the room resets. */
export const MAX_GAP_ATTEMPTS = 3;

export interface StreamHost {
  readonly gapWaitMs: number;
  request<R extends RequestType>(frame: OutRequest<R>, handlers: RequestHandlers<ReplyTo<R>>): number;
}

export interface StreamSink {
  message(m: Message): void;
  reset(e: ResetEvent): void;
  error(e: SwitchboardClientError): void;
}

export class RoomStream {
  private readonly buffer: ReorderBuffer;
  /** False while not joined on a live connection: nothing is delivered or fetched. */
  private live = false;
  /** Bumped on every (dis)connection: callbacks of an older one are ignored. */
  private gen = 0;
  private gapTimer: ReturnType<typeof setTimeout> | null = null;
  private fetching = false;
  private gapAttempts = 0;

  constructor(
    private readonly room: string,
    reorderBufferMax: number,
    private readonly host: StreamHost,
    private readonly sink: StreamSink,
    since: Position | undefined,
  ) {
    this.buffer = new ReorderBuffer(reorderBufferMax);
    if (since !== undefined) this.buffer.setPosition(since);
  }

  get position(): Position | null {
    return this.buffer.position;
  }

  /**
   * The `joined` reply: continue from where the app is when the server recovered (the missed messages
   * follow as ordinary messages), else reset to the server's position.
   */
  joined(position: Position, recovery: 'none' | 'recovered' | 'reset'): void {
    this.live = true;
    const previous = this.buffer.position;
    const continues =
      previous !== null && previous.epoch === position.epoch && (recovery === 'recovered' || (recovery === 'none' && previous.seq === position.seq));
    if (previous === null) this.buffer.setPosition(position);
    else if (!continues) {
      this.buffer.setPosition(position);
      this.sink.reset({ room: this.room, position, previous, reason: previous.epoch !== position.epoch ? 'epoch' : 'recovery' });
    }
  }

  /** The connection dropped or the room was left: the next join recovers everything after the position. */
  stop(): void {
    this.live = false;
    this.gen++;
    if (this.gapTimer !== null) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.fetching = false;
    this.gapAttempts = 0;
    this.buffer.clearHeld();
  }

  /** A `catchup` or `skipped` frame: seqs up to `to` it was not sent are not waited for (reorder.ts `skip`). */
  skip(to: number): void {
    if (this.live) this.buffer.skip(to);
  }

  /** A live or recovered `message`. */
  accept(m: Message): void {
    if (!this.live) return;
    let r = this.buffer.offer(m);
    if (r.epochChanged) {
      // The room's seq started over: what the app holds no longer continues.
      const previous = this.buffer.position;
      const position = { seq: Math.max(0, m.seq - 1), epoch: m.epoch };
      this.buffer.setPosition(position);
      this.sink.reset({ room: this.room, position, previous, reason: 'epoch' });
      if (!this.live) return;
      r = this.buffer.offer(m);
    }
    this.deliver(r.deliver);
    this.checkGap();
  }

  private deliver(messages: Message[]): void {
    for (const m of messages) {
      if (!this.live) return;
      this.sink.message(m);
    }
  }

  /** A gap: wait `gapWaitMs` for it to fill by itself, then ask history (at once when the buffer is full). */
  private checkGap(): void {
    if (!this.live) return;
    if (this.buffer.missing() === null) {
      if (this.gapTimer !== null) clearTimeout(this.gapTimer);
      this.gapTimer = null;
      this.gapAttempts = 0;
      return;
    }
    if (this.fetching || this.gapTimer !== null) return;
    this.fetchLater(this.buffer.full ? 0 : this.host.gapWaitMs);
  }

  private fetchLater(ms: number): void {
    const gen = this.gen;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      if (gen === this.gen) this.fetchGap();
    }, ms);
  }

  private fetchGap(): void {
    const miss = this.buffer.missing();
    const pos = this.buffer.position;
    if (miss === null || pos === null || !this.live) return;
    this.fetching = true;
    const gen = this.gen;
    this.host.request(
      { type: 'history', room: this.room, after: miss.after, limit: Math.min(1000, miss.upTo - miss.after) },
      {
        onReply: (f) => {
          if (gen !== this.gen) return;
          this.fetching = false;
          const before = this.buffer.position?.seq ?? 0;
          for (const m of f.messages) {
            if (m.epoch !== pos.epoch) continue; // a history row of an older run of seqs
            this.deliver(this.buffer.offer(m).deliver);
            if (!this.live) return;
          }
          const progressed = (this.buffer.position?.seq ?? 0) > before;
          if (this.buffer.missing() === null) this.gapAttempts = 0;
          else if (progressed) {
            this.gapAttempts = 0;
            this.fetchGap();
          } else this.gapStuck(null);
        },
        onError: (e) => {
          if (gen !== this.gen) return;
          this.fetching = false;
          if (e.code !== 'disconnected') this.gapStuck(e);
        },
      },
    );
  }

  /**
   * History had nothing right after the position (it may lag behind live delivery), or failed: try again
   * after `gapWaitMs` a few times, then give up on the hole with a `reset` and go on.
   */
  private gapStuck(error: SwitchboardClientError | null): void {
    this.gapAttempts++;
    if (this.gapAttempts < MAX_GAP_ATTEMPTS) return this.fetchLater(this.host.gapWaitMs);
    this.gapAttempts = 0;
    if (error !== null) this.sink.error(error);
    const previous = this.buffer.position;
    const { position, deliver } = this.buffer.skipGap();
    this.sink.reset({ room: this.room, position, previous, reason: 'gap' });
    this.deliver(deliver);
    this.checkGap();
  }
}
