/**
 * Request/reply over the connection: ids, replies matched by id (they may come in any order), a deadline
 * per request, and at most `maxInFlight` requests sent and unanswered at once (the rest wait in order).
 *
 * Requests outlive connections. While there is no connection they wait (their deadline runs). When the
 * connection drops, a request marked `resend` (reads: history, presence) goes back to the waiting line and
 * is sent again on the next connection; any other (join, leave, publish) fails with `disconnected` and its
 * owner decides what to do (rooms rejoin, publishes are requeued with their idem).
 */
import { isFrame } from '../protocol/parse.js';
import type { ServerFrame, ServerFrameOf } from '../protocol/wire.js';
import { SwitchboardClientError, fromErrorFrame } from './errors.js';

/** The reply frame type of each request the SDK sends (an `error` frame can answer any of them). */
const REPLY_TYPES = {
  join: 'joined',
  leave: 'left',
  publish: 'ack',
  history: 'history.page',
  presence: 'presence.list',
  send: 'sent',
  rpc: 'rpc.result',
} as const;

export type RequestType = keyof typeof REPLY_TYPES;
/** A request frame before its id is set. */
export type OutRequest<R extends RequestType = RequestType> = { type: R } & Record<string, unknown>;
/** The reply to a request of type R. */
export type ReplyTo<R extends RequestType> = ServerFrameOf<(typeof REPLY_TYPES)[R]>;
export type OutFrame = { type: string; id?: number } & Record<string, unknown>;

export interface RequestHandlers<F = ServerFrame> {
  /** The reply (the frame with this id, of the type that answers the request). Called synchronously from the frame handler. */
  onReply(frame: F): void;
  onError(error: SwitchboardClientError): void;
  /** Send again on the next connection if this one drops (idempotent reads). */
  resend?: boolean;
  /** Jump the waiting line (joins: a room is rejoined before waiting reads and publishes go out). */
  first?: boolean;
}

interface Pending {
  readonly id: number;
  readonly frame: OutFrame;
  /** Hands a reply that is not an `error` frame to the owner, checking its type. */
  readonly reply: (frame: ServerFrame) => void;
  readonly onError: (error: SwitchboardClientError) => void;
  readonly resend: boolean;
  readonly first: boolean;
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
  request<R extends RequestType>(frame: OutRequest<R>, handlers: RequestHandlers<ReplyTo<R>>, timeoutMs = this.timeoutMs): number {
    const id = this.nextId++;
    const expected = REPLY_TYPES[frame.type];
    const p: Pending = {
      id,
      frame: { ...frame, id },
      reply: (f) => {
        if (isFrame(f, expected)) handlers.onReply(f);
        else handlers.onError(new SwitchboardClientError('internal', `the server answered ${frame.type} with ${f.type}`));
      },
      onError: handlers.onError,
      resend: handlers.resend === true,
      first: handlers.first === true,
      sent: false,
      timer: setTimeout(() => this.expire(id), timeoutMs),
    };
    this.open.set(id, p);
    if (p.first) {
      let i = 0;
      while (i < this.waiting.length && this.waiting[i]!.first) i++;
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
      if (p.resend) keep.push(p);
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
  handle(frame: ServerFrame): boolean {
    if (!('id' in frame) || typeof frame.id !== 'number') return false;
    const p = this.open.get(frame.id);
    if (p === undefined || !p.sent) return false;
    this.finish(p);
    if (frame.type === 'error') p.onError(fromErrorFrame(frame));
    else p.reply(frame);
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
