/**
 * Request/reply over the connection: ids, replies matched by id (they may come in any order), a deadline
 * per request, and at most `maxInFlight` requests sent and unanswered at once (the rest wait in order).
 *
 * Requests outlive connections. While there is no connection they wait (their deadline runs). When the
 * connection drops, a request marked `resend` (reads: history, presence) goes back to the waiting line and
 * is sent again on the next connection; any other (join, leave, publish) fails with `disconnected` and its
 * owner decides what to do (rooms rejoin, publishes are requeued with their idem).
 */
import { SwitchboardClientError, fromErrorFrame } from './errors.js';

export type OutFrame = { type: string; id?: number } & Record<string, unknown>;
export type ReplyFrame = { type: string; id?: unknown } & Record<string, unknown>;

export interface RequestHandlers {
  /** The reply (any frame with this id but `error`). Called synchronously from the frame handler. */
  onReply(frame: ReplyFrame): void;
  onError(error: SwitchboardClientError): void;
  /** Send again on the next connection if this one drops (idempotent reads). */
  resend?: boolean;
  /** Jump the waiting line (joins: a room is rejoined before waiting reads and publishes go out). */
  first?: boolean;
}

interface Pending extends RequestHandlers {
  readonly id: number;
  readonly frame: OutFrame;
  sent: boolean;
  timer: ReturnType<typeof setTimeout>;
}

export class Requests {
  private nextId = 1;
  /** Every open request by id, sent or waiting. */
  private readonly open = new Map<number, Pending>();
  /** Waiting to be sent, in order. */
  private waiting: Pending[] = [];
  private inFlight = 0;
  private send: ((frame: OutFrame) => void) | null = null;

  constructor(
    private readonly maxInFlight: number,
    private readonly timeoutMs: number,
  ) {}

  get pending(): number {
    return this.open.size;
  }

  /** Starts a request; returns its id. */
  request(frame: Omit<OutFrame, 'id'>, handlers: RequestHandlers, timeoutMs = this.timeoutMs): number {
    const id = this.nextId++;
    const p: Pending = {
      ...handlers,
      id,
      frame: { ...frame, id } as OutFrame,
      sent: false,
      timer: setTimeout(() => this.expire(id), timeoutMs),
    };
    this.open.set(id, p);
    if (handlers.first === true) {
      let i = 0;
      while (i < this.waiting.length && this.waiting[i]!.first === true) i++;
      this.waiting.splice(i, 0, p);
    } else this.waiting.push(p);
    this.pump();
    return id;
  }

  /** A connection is ready: `send` writes one frame to it. */
  attach(send: (frame: OutFrame) => void): void {
    this.send = send;
    this.pump();
  }

  /** The connection dropped: resendable requests wait again, the others fail with `disconnected`. */
  detach(cause?: SwitchboardClientError): void {
    this.send = null;
    this.inFlight = 0;
    const failed: Pending[] = [];
    const keep: Pending[] = [];
    for (const p of this.open.values()) {
      p.sent = false;
      if (p.resend === true) keep.push(p);
      else failed.push(p);
    }
    this.waiting = keep; // `open` iterates in creation order, so the line keeps its order
    for (const p of failed) {
      this.finish(p);
      p.onError(new SwitchboardClientError('disconnected', 'connection lost before the reply', { cause }));
    }
  }

  /** Fails every open request (client closed). */
  failAll(error: SwitchboardClientError): void {
    const all = [...this.open.values()];
    this.waiting = [];
    for (const p of all) {
      this.finish(p);
      p.onError(error);
    }
  }

  /** Cancels a request without calling its handlers. */
  cancel(id: number): void {
    const p = this.open.get(id);
    if (p !== undefined) this.finish(p);
  }

  /** Routes a frame that carries an id; false if it answers no open request. */
  handle(frame: ReplyFrame): boolean {
    if (typeof frame.id !== 'number') return false;
    const p = this.open.get(frame.id);
    if (p === undefined || !p.sent) return false;
    this.finish(p);
    if (frame.type === 'error') {
      p.onError(fromErrorFrame(frame as unknown as { code: string; message: string; retryable: boolean; room?: string }));
    } else p.onReply(frame);
    return true;
  }

  private expire(id: number): void {
    const p = this.open.get(id);
    if (p === undefined) return;
    this.finish(p);
    const room = typeof p.frame.room === 'string' ? { room: p.frame.room } : {};
    p.onError(new SwitchboardClientError('timeout', `no reply to ${p.frame.type} within the request timeout`, room));
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    this.open.delete(p.id);
    if (p.sent) this.inFlight--;
    else {
      const i = this.waiting.indexOf(p);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    p.sent = false;
    this.pump();
  }

  private pump(): void {
    while (this.send !== null && this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const p = this.waiting.shift()!;
      p.sent = true;
      this.inFlight++;
      this.send(p.frame);
    }
  }
}
