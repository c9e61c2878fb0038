/**
 * One Pusher protocol connection: its socket, app, channel subscriptions, heartbeat state and output queue
 * (the same Outbox and bounds as protocol v1's connections). Room frames are written by the Pusher codec.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { PusherApp } from '../config/schema.js';
import type { Json, RoomRef } from '../engines/types.js';
import { behindSink, type BehindSink, type Outbox } from '../gateway/outbox.js';
import { closeFlushed, cutUnflushed } from '../gateway/socket-close.js';
import { pusherError, PusherClose } from '../protocol/pusher.js';
import type { ChannelKind } from '../protocol/pusher.js';
import type { Membership, RoomCodec, RoomMember } from '../rooms/room.js';
import { PUSHER_CODEC, PUSHER_RESUME_CODEC } from './codec.js';

/** A subscription: the room membership, and for a presence channel the user it is present as. */
export interface Subscription {
  readonly kind: ChannelKind;
  readonly ref: RoomRef;
  readonly membership: Membership;
  /** Presence channels: the user from `channel_data`, and the connection id presence knows this subscription by. */
  readonly presence?: { readonly user: string; readonly info: Json | undefined; readonly connId: string };
}

export class PusherConnection implements BehindSink, RoomMember {
  queue: Buffer[] | null = null;
  queuedBytes = 0;
  dead = false;
  overSince = 0;
  blocked = false;
  closeCode = 0;
  readonly subs = new Map<string, Subscription>();
  lastRecv: number;
  /** When the server's ping was sent; 0 while none is outstanding. */
  pingSentAt = 0;
  badFrames = 0;
  /** Client events sent in the current one-second window, and when it started. */
  clientEvents = 0;
  clientEventsWindow = 0;
  /** The user signed in with `pusher:signin`, if any. */
  user: string | null = null;
  /** Subscribes in progress (bounded per connection). */
  inflight = 0;
  /** Being drained: it gets no more presence events before its close (rooms/room.ts RoomMember.leaving). */
  leaving = false;
  /** Rooms (conflate / drop) waiting for it to read again. */
  drainWaiters: Array<() => void> | null = null;

  constructor(
    /** Pusher's socket id (`<node number>.<counter>`), also the connection's id in logs and presence. */
    readonly socketId: string,
    readonly app: PusherApp,
    readonly ws: WebSocket,
    readonly socket: Socket,
    private readonly outbox: Outbox,
    private readonly onSlowConsumer: (c: PusherConnection) => void,
    /** Opted into the resume extension (`sb_resume=1`): events carry seq and epoch, subscribe takes `since`. */
    readonly resume: boolean,
  ) {
    this.lastRecv = Date.now();
  }

  get codec(): RoomCodec {
    return this.resume ? PUSHER_RESUME_CODEC : PUSHER_CODEC;
  }

  send(frame: Buffer): void {
    this.outbox.enqueue(this, frame);
  }

  /** `pusher:error`; the caller counts it. */
  sendError(code: number | null, message: string): void {
    this.send(pusherError(code, message));
  }

  onSlow(): void {
    this.onSlowConsumer(this);
  }

  /** In a conflate or drop room: behind as a v1 connection is (gateway/outbox.ts behindSink). */
  behind(): boolean {
    return behindSink.behind(this, this.outbox);
  }

  whenDrained(fn: () => void): void {
    behindSink.whenDrained(this, fn);
  }

  drained(): void {
    behindSink.drained(this);
  }

  /** Flushes queued output, then closes with a Pusher close code. */
  close(code: number, reason: string): void {
    closeFlushed(this, this.outbox, code, reason);
  }

  /** A terminate order for its signed-in user (Pusher's terminate_connections): Pusher closes with 4009. */
  terminate(): void {
    this.close(PusherClose.terminated, 'Connection terminated by the server');
  }

  /** Cuts without flushing (slow consumer: its queue was dropped). */
  cut(code: number, reason: string): void {
    cutUnflushed(this, code, reason);
  }
}
