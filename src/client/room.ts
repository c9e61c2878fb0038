/**
 * A room as the app sees it: joined (and re-joined after every reconnect, with `since` = the last message
 * the app received), its messages delivered strictly in seq order and each once, publishes that survive
 * disconnects (offline queue, idempotent retries), history and presence.
 */
import { isEventName, isIdemId, isRoomName, ROOM_NAME_RULE } from '../protocol/names.js';
import type { CatchupFrame, JoinedFrame, MessageFrame, PresenceDiffFrame, SkippedFrame } from '../protocol/wire.js';
import { backoffDelay } from './backoff.js';
import { Emitter, type Listener } from './events.js';
import { invalidArgument, SwitchboardClientError } from './errors.js';
import { newIdem, type OfflineQueue, type PendingPublish } from './offline-queue.js';
import { RoomStream } from './stream.js';
import type { OutRequest, ReplyTo, RequestHandlers, RequestType } from './requests.js';
import type { HistoryPage, HistoryQuery, Json, Message, Position, PresenceMember, PublishResult, RoomEvents, RoomOptions } from './types.js';

/** What a room needs from the client's connection. */
export interface RoomHost {
  /** True between `connected` and the loss of that connection. */
  readonly connected: boolean;
  readonly closed: boolean;
  /** `maxFrameBytes` of the current (or last) node, 65536 before the first connection. */
  readonly maxFrameBytes: number;
  readonly queue: OfflineQueue;
  readonly gapWaitMs: number;
  request<R extends RequestType>(frame: OutRequest<R>, handlers: RequestHandlers<ReplyTo<R>>): number;
  /** Drops the connection and reconnects (a join that timed out: the connection is not trusted). */
  recycle(error: SwitchboardClientError): void;
  /** The room was left or failed: forget it. */
  forget(room: Room): void;
  nextOrder(): number;
}

/** A publish is retried after this many server errors or timeouts at most (disconnects do not count). */
export const MAX_PUBLISH_FAILURES = 8;
const RETRY_BACKOFF = { minMs: 100, maxMs: 5_000, factor: 2 };

type Status = 'idle' | 'joining' | 'joined' | 'left';

export class Room {
  private readonly events = new Emitter<RoomEvents>();
  private readonly stream: RoomStream;
  private status: Status = 'idle';
  /** Bumped on every connection change: callbacks of an older connection are ignored. */
  private gen = 0;
  private joinFailures = 0;
  private joinTimer: ReturnType<typeof setTimeout> | null = null;
  /** Publishes waiting out a retry delay. */
  private readonly parked = new Map<PendingPublish, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly host: RoomHost,
    readonly name: string,
    reorderBufferMax: number,
    since: Position | undefined,
  ) {
    this.stream = new RoomStream(
      name,
      reorderBufferMax,
      host,
      {
        message: (m) => this.events.emit('message', m),
        reset: (e) => this.events.emit('reset', e),
        error: (e) => this.events.emit('error', e),
      },
      since,
    );
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof RoomEvents>(event: K, listener: Listener<RoomEvents[K]>): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof RoomEvents>(event: K, listener: Listener<RoomEvents[K]>): void {
    this.events.off(event, listener);
  }

  /** The last message delivered to the app (persist it to resume after a reload), or null before the first join. */
  get position(): Position | null {
    return this.stream.position;
  }

  /** True while the room is joined on a live connection. */
  get joined(): boolean {
    return this.status === 'joined';
  }

  /** True once `leave()` was called or the join was refused for good. */
  get left(): boolean {
    return this.status === 'left';
  }

  /**
   * Publishes `data` (any JSON value). Resolves with the message's seq and epoch once the server stored it.
   * While the room is not joined (offline, reconnecting) the publish waits in the offline queue; a full
   * queue rejects with `offline_queue_full`. Disconnects, `unavailable` and timeouts are retried with the same
   * `idem`, so the message is stored once. `event` names the message (1–200 printable ASCII characters, no
   * spaces); members receive it as `message.event`. `key` (same alphabet) is the conflation key: in a `conflate`
   * room a member that fell behind gets only the newest message of each key.
   */
  publish(data: Json, options: { idem?: string; event?: string; key?: string } = {}): Promise<PublishResult> {
    let snapshot: Json;
    try {
      snapshot = this.checkPublish(data, options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.status === 'left' || this.host.closed) return Promise.reject(this.closedError());
    return new Promise<PublishResult>((resolve, reject) => {
      const p: PendingPublish = {
        order: this.host.nextOrder(),
        room: this.name,
        data: snapshot,
        idem: options.idem ?? newIdem(),
        ...(options.event !== undefined ? { event: options.event } : {}),
        ...(options.key !== undefined ? { key: options.key } : {}),
        failures: 0,
        resolve,
        reject,
      };
      if (this.status === 'joined' && this.host.connected) this.sendPublish(p);
      else if (!this.host.queue.add(p)) {
        reject(new SwitchboardClientError('offline_queue_full', `offline queue is full (${this.host.queue.max} publishes waiting)`, { room: this.name }));
      }
    });
  }

  /** A page of history (needs the join right, not membership). Waits for a connection if there is none. */
  history(query: HistoryQuery = {}): Promise<HistoryPage> {
    try {
      checkHistoryQuery(query);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.read({ type: 'history', room: this.name, ...query }, (f) => ({ messages: f.messages, more: f.more }));
  }

  /** The room's members: online users, then those who left recently. */
  presence(): Promise<PresenceMember[]> {
    return this.read({ type: 'presence', room: this.name }, (f) => f.members);
  }

  /**
   * After a `reset`: the newest `limit` (default 50) messages up to the current position, oldest first. Live
   * messages after the position keep coming as `message` events, so the two together have no gap and no
   * duplicate.
   */
  async reloadFromHistory(options: { limit?: number } = {}): Promise<Message[]> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1) throw invalidArgument('limit must be a positive integer');
    const pos = this.stream.position;
    const out: Message[] = [];
    let before = pos === null ? undefined : pos.seq + 1;
    while (out.length < limit && (before === undefined || before > 1)) {
      const q: HistoryQuery = { limit: Math.min(1000, limit - out.length), ...(before !== undefined ? { before } : {}) };
      const page = await this.history(q);
      out.unshift(...page.messages.filter((m) => pos === null || m.epoch === pos.epoch));
      const first = page.messages[0];
      if (!page.more || first === undefined) break;
      before = first.seq;
    }
    return out;
  }

  /** Leaves the room: no more events; queued publishes reject with `closed`. Resolves when the server confirmed. */
  leave(): Promise<void> {
    if (this.status === 'left') return Promise.resolve();
    const wasMember = this.status === 'joined' || this.status === 'joining';
    this.shutdown(this.closedError());
    if (!wasMember || !this.host.connected) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.host.request({ type: 'leave', room: this.name }, { onReply: () => resolve(), onError: () => resolve() });
    });
  }

  // ---- called by the client --------------------------------------------------------------------------

  /** A connection is up: join (with `since` when there is a position). */
  onConnected(): void {
    if (this.status === 'left') return;
    this.gen++;
    this.joinFailures = 0;
    this.join();
  }

  /** The connection dropped: everything is redone by the next join. */
  onDisconnected(): void {
    if (this.status === 'left') return;
    this.gen++;
    this.status = 'idle';
    this.clearTimers();
    this.stream.stop();
  }

  /** A `message` frame for this room. */
  onMessage(f: MessageFrame): void {
    if (this.status !== 'joined') return;
    const { type: _t, ...m } = f;
    this.stream.accept(m);
  }

  /** A `presence.diff`, `catchup` or `skipped` frame for this room. */
  onFrame(f: PresenceDiffFrame | CatchupFrame | SkippedFrame): void {
    if (this.status !== 'joined') return;
    if (f.type === 'presence.diff') {
      const { type: _t, ...diff } = f;
      this.events.emit('presence', diff);
      return;
    }
    this.stream.skip(f.to);
    const { type, ...e } = f;
    if (type === 'catchup') this.events.emit('catchup', e as RoomEvents['catchup']);
    else this.events.emit('skipped', e);
  }

  /** A server error frame naming this room but no open request. */
  onError(error: SwitchboardClientError): void {
    this.events.emit('error', error);
  }

  /** The client closed (or was closed by the server for good): reject everything that waits. */
  shutdown(error: SwitchboardClientError): void {
    if (this.status === 'left') return;
    this.status = 'left';
    this.gen++;
    this.clearTimers();
    this.stream.stop();
    for (const [p, timer] of this.parked) {
      clearTimeout(timer);
      p.reject(error);
    }
    this.parked.clear();
    for (const p of this.host.queue.take(this.name)) p.reject(error);
    this.host.forget(this);
  }

  // ---- join --------------------------------------------------------------------------------------------

  private join(): void {
    this.status = 'joining';
    const since = this.stream.position;
    const gen = this.gen;
    this.host.request(
      { type: 'join', room: this.name, ...(since !== null ? { since } : {}) },
      {
        first: true,
        onReply: (f) => {
          if (gen === this.gen && this.status === 'joining') this.onJoined(f);
        },
        onError: (e) => {
          if (gen === this.gen && this.status === 'joining') this.joinFailed(e);
        },
      },
    );
  }

  private onJoined(f: JoinedFrame): void {
    const position: Position = { seq: f.seq, epoch: f.epoch };
    this.status = 'joined';
    this.joinFailures = 0;
    this.stream.joined(position, f.recovery);
    this.events.emit('joined', { room: this.name, position, recovery: f.recovery, missed: f.missed });
    this.flush();
  }

  private joinFailed(e: SwitchboardClientError): void {
    this.status = 'idle';
    if (e.code === 'disconnected') return; // rejoined on the next connection
    if (e.code === 'timeout') return this.host.recycle(e);
    if (e.retryable) {
      this.joinFailures++;
      const gen = this.gen;
      this.joinTimer = setTimeout(
        () => {
          this.joinTimer = null;
          if (gen === this.gen && this.host.connected) this.join();
        },
        Math.max(50, backoffDelay(this.joinFailures, RETRY_BACKOFF)),
      );
      return;
    }
    // Refused for good (forbidden, bad_room, too_many_rooms…): the room is dead; tell the app.
    this.events.emit('error', e);
    this.shutdown(e);
  }

  // ---- publish -----------------------------------------------------------------------------------------

  private checkPublish(data: Json, options: { idem?: string; event?: string; key?: string }): Json {
    if (typeof options !== 'object' || options === null) throw invalidArgument('publish options must be an object');
    if (options.idem !== undefined && !isIdemId(options.idem)) throw invalidArgument('idem must be 1–128 printable ASCII characters without spaces');
    for (const k of ['event', 'key'] as const)
      if (options[k] !== undefined && !isEventName(options[k])) throw invalidArgument(`${k} must be 1–200 printable ASCII characters without spaces`);
    let text: string | undefined;
    try {
      text = JSON.stringify(data);
    } catch (err) {
      throw new SwitchboardClientError('invalid_argument', 'data is not serializable as JSON', { cause: err });
    }
    if (text === undefined) throw invalidArgument('data must be a JSON value (null is allowed, undefined is not)');
    // The frame adds the envelope (type, id, room, idem): ~400 bytes at most.
    const bytes = text.length * 3 + 400 > this.host.maxFrameBytes ? new TextEncoder().encode(text).length + 400 : 0;
    if (bytes > this.host.maxFrameBytes) {
      throw new SwitchboardClientError('frame_too_large', `data is ${bytes - 400} bytes; frames are limited to ${this.host.maxFrameBytes}`, {
        room: this.name,
      });
    }
    return JSON.parse(text) as Json;
  }

  private sendPublish(p: PendingPublish): void {
    this.host.request(
      { type: 'publish', room: this.name, data: p.data, idem: p.idem, event: p.event, key: p.key },
      {
        onReply: (f) => p.resolve({ seq: f.seq, epoch: f.epoch, duplicate: f.duplicate }),
        onError: (e) => this.publishFailed(p, e),
      },
    );
  }

  private publishFailed(p: PendingPublish, e: SwitchboardClientError): void {
    if (e.code === 'closed') return p.reject(e);
    if (this.status === 'left' || this.host.closed) return p.reject(this.closedError(e));
    if (e.code === 'disconnected') {
      this.host.queue.requeue(p);
      return;
    }
    if (e.retryable && e.code !== 'token_expired' && p.failures < MAX_PUBLISH_FAILURES) {
      p.failures++;
      const timer = setTimeout(
        () => {
          this.parked.delete(p);
          this.host.queue.requeue(p);
          this.flush();
        },
        Math.max(20, backoffDelay(p.failures, RETRY_BACKOFF)),
      );
      this.parked.set(p, timer);
      return;
    }
    p.reject(e);
  }

  /** Sends the publishes that waited for the room to be joined. */
  private flush(): void {
    if (this.status !== 'joined' || !this.host.connected) return;
    for (const p of this.host.queue.take(this.name)) this.sendPublish(p);
  }

  // ---- helpers -----------------------------------------------------------------------------------------

  private read<R extends 'history' | 'presence', T>(frame: OutRequest<R>, map: (f: ReplyTo<R>) => T): Promise<T> {
    if (this.status === 'left' || this.host.closed) return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      this.host.request(frame, { resend: true, onReply: (f) => resolve(map(f)), onError: reject });
    });
  }

  private closedError(cause?: unknown): SwitchboardClientError {
    const what = this.host.closed ? 'the client is closed' : `room ${this.name} was left`;
    return new SwitchboardClientError('closed', what, { room: this.name, ...(cause !== undefined ? { cause } : {}) });
  }

  private clearTimers(): void {
    if (this.joinTimer !== null) clearTimeout(this.joinTimer);
    this.joinTimer = null;
  }
}

function checkHistoryQuery(q: HistoryQuery): void {
  if (typeof q !== 'object' || q === null) throw invalidArgument('history query must be an object');
  for (const key of ['before', 'after'] as const) {
    const v = q[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw invalidArgument(`${key} must be a non-negative integer`);
  }
  if (q.before !== undefined && q.after !== undefined) throw invalidArgument('give before or after, not both');
  if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 1000)) throw invalidArgument('limit must be an integer in 1–1000');
}

/** Checks `connection.room(name, options)`'s arguments (throws `invalid_argument`); returns the `since` position. */
export function checkRoomArgs(name: string, options: RoomOptions): RoomOptions['since'] {
  if (!isRoomName(name)) throw invalidArgument(`invalid room name ${JSON.stringify(name)}: ${ROOM_NAME_RULE}`);
  if (typeof options !== 'object' || options === null) throw invalidArgument('room options must be an object');
  const since = options.since;
  if (
    since !== undefined &&
    (typeof since !== 'object' ||
      since === null ||
      !Number.isSafeInteger(since.seq) ||
      since.seq < 0 ||
      typeof since.epoch !== 'string' ||
      since.epoch.length < 1 ||
      since.epoch.length > 64)
  ) {
    throw invalidArgument('since must be {seq: integer ≥ 0, epoch: string of 1–64 characters}');
  }
  return since;
}
