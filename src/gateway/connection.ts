/**
 * One client connection: its socket, identity, rooms, heartbeat state and coalesced output queue.
 * Kept small: an idle connection costs little beyond what `ws` itself holds.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Identity } from '../auth/identity.js';
import { CloseCodes } from '../protocol/close-codes.js';
import { wireFrame } from '../protocol/encode.js';
import type { ClientFrame, RequestId, ServerFrame } from '../protocol/frames.js';
import { ErrorCodes, type ErrorCode } from '../protocol/errors.js';
import { behindSink, type BehindSink } from './outbox.js';
import { V1_CODEC, type Membership, type RoomCodec, type RoomMember } from '../rooms/room.js';
import type { ConnectionDeps } from './deps.js';
import { closeFlushed, cutUnflushed } from './socket-close.js';

export class Connection implements BehindSink, RoomMember {
  queue: Buffer[] | null = null;
  queuedBytes = 0;
  dead = false;
  overSince = 0;
  blocked = false;
  identity: Identity | null = null;
  authenticating = false;
  /** Room name → membership (the tenant is the identity's). */
  readonly rooms = new Map<string, Membership>();
  lastRecv: number;
  /** When the last ping was sent; 0 while none is outstanding. */
  pingSentAt = 0;
  nextPingAt: number;
  badFrames = 0;
  /** Requests of this connection in progress. */
  inflight = 0;
  /** What the connect hook is sent of the upgrade request (its chosen headers and cookies); null without that hook. */
  hookCredentials: { readonly headers: Record<string, string>; readonly cookies: Record<string, string> } | null = null;
  /** Publish token bucket (publishRatePerConnection): tokens left, and when it was last filled. */
  publishTokens = -1;
  publishFilledAt = 0;
  /** Frames received while connect was still in progress, run when it completes. */
  readonly early: ClientFrame[] = [];
  closeCode = 0;
  /** Told to reconnect elsewhere (drain notice): no more presence diffs (rooms/room.ts, RoomMember). */
  leaving = false;
  /** Rooms waiting for this connection to read again (conflate / drop members that fell behind); null: none. */
  drainWaiters: Array<() => void> | null = null;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly socket: Socket,
    private readonly ctx: ConnectionDeps,
    readonly openedAt: number,
    private readonly onSlowConsumer: (c: Connection) => void,
  ) {
    this.lastRecv = openedAt;
    // Spread first pings over the interval so connections opened together are not pinged together.
    this.nextPingAt = openedAt + ctx.config.pingIntervalMs * (0.5 + Math.random() * 0.5);
  }

  /** Protocol v1's room frames: compressed ones when the client negotiated permessage-deflate (gateway/compression.ts). */
  codec: RoomCodec = V1_CODEC;
  /** Opted in at `connect`: frames queued for one write go out as one batch frame (gateway/batch.ts). */
  batch = false;

  send(frame: Buffer): void {
    this.ctx.outbox.enqueue(this, frame);
  }

  sendFrame(frame: ServerFrame): void {
    this.send(wireFrame(frame));
  }

  sendError(code: ErrorCode, message: string, id?: RequestId, room?: string): void {
    this.ctx.edge.counted(code);
    const frame: ServerFrame = { type: 'error', code, message, retryable: ErrorCodes[code].retryable };
    if (id !== undefined) frame.id = id;
    if (room !== undefined) frame.room = room;
    this.sendFrame(frame);
  }

  onSlow(): void {
    this.onSlowConsumer(this);
  }

  /**
   * Behind: its socket takes no more (the outbox waits for 'drain') and its unsent output is past the bound at which a
   * conflate or drop room stops sending (under the slow-consumer bound: never cut for it). A reader that keeps up
   * takes a burst of any size in one go and is never behind.
   */
  behind(): boolean {
    return behindSink.behind(this, this.ctx.outbox);
  }

  whenDrained(fn: () => void): void {
    behindSink.whenDrained(this, fn);
  }

  drained(): void {
    behindSink.drained(this);
  }

  /** Flushes queued output, then closes with a code from protocol/close-codes.ts. */
  close(code: number, reason: string): void {
    closeFlushed(this, this.ctx.outbox, code, reason);
  }

  /** Cuts the connection without flushing (slow consumer: its queue was dropped; socket-close.ts). */
  cut(code: number, reason: string): void {
    cutUnflushed(this, code, reason);
  }

  static readonly codes = CloseCodes;
}
