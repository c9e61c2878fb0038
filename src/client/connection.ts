/**
 * The connection state machine. Every state change goes through `setState`, which emits `{from, to, …}`:
 *
 *   (new) ──▶ connecting ──connected──▶ connected ──lost──▶ disconnected ──▶ reconnecting ──connected──▶ connected
 *                 │                                              ▲ (offline)      │  ▲
 *                 └──failed──────────────────────────────────────┼───────────────▶┘  └─failed (attempt+1)
 *   any state ──close() / terminal close code / auth refused for good──▶ closed
 *
 * A lost connection is retried after a full-jitter backoff delay (not before a `notice`'s `reconnectAfterMs`, counted from
 * its arrival), with a fresh token from `getToken` on each attempt, one attempt at a time: `handshakeTimeoutMs` for the
 * handshake, then `connectTimeoutMs` for `connected`; an abandoned attempt's socket is closed first (docs/client.md,
 * "Connection attempts"). Close codes: protocol/close-codes.ts (docs/protocol.md §6); 4005 and 4006 reconnect only with
 * `getToken`, which also gives the fresh token a `refresh` frame carries ahead of the token's expiry (token-refresh.ts).
 */
import { isTerminalCloseCode } from '../protocol/close-codes.js';
import { parseServerFrame } from '../protocol/parse.js';
import type { ConnectedFrame, ErrorFrame } from '../protocol/wire.js';
import { backoffDelay } from './backoff.js';
import { Emitter } from './events.js';
import { fromErrorFrame, SwitchboardClientError } from './errors.js';
import { OfflineQueue } from './offline-queue.js';
import type { ResolvedOptions } from './options.js';
import { Requests, type OutFrame, type OutRequest, type ReplyTo, type RequestHandlers, type RequestType } from './requests.js';
import { checkRoomArgs, Room, type RoomHost } from './room.js';
import { shutSocket, watchNetwork } from './socket.js';
import { REFRESH_ID, staleToken, TokenRefresh, tokenFrom } from './token-refresh.js';
import type { ClientEvents, ConnectionState, RoomOptions, StateChange, WebSocketLike } from './types.js';

type Timer = ReturnType<typeof setTimeout>;

/** Id of the `connect` frame (string, so it never collides with request ids). */
const CONNECT_ID = 'connect';
/** What the server said in `connected`: who the connection is, where, and its limits. */
export type ConnectedInfo = Pick<ConnectedFrame, 'connId' | 'node' | 'user' | 'tenant' | 'pingIntervalMs' | 'pingTimeoutMs' | 'maxFrameBytes'>;

export class Connection implements RoomHost {
  readonly events = new Emitter<ClientEvents>();
  readonly queue: OfflineQueue;
  private readonly requests: Requests;
  private readonly rooms = new Map<string, Room>();
  private state_: ConnectionState = 'disconnected';
  private ws: WebSocketLike | null = null;
  /** Bumped for every socket and every drop: callbacks of an older socket are ignored. */
  private gen = 0;
  /** Failed attempts since the last `connected`. */
  private attempt = 0;
  private info_: ConnectedInfo | null = null;
  private reconnectTimer: Timer | null = null;
  private connectTimer: Timer | null = null;
  private watchdogTimer: Timer | null = null;
  private readonly refresh = new TokenRefresh((err) => this.events.emit('error', err));
  /** From a `notice` (Date.now() + reconnectAfterMs on arrival): do not reconnect before this. */
  private noticeUntil: number | null = null;
  /** An error frame that explains the close about to follow (unauthorized, token_expired). */
  private serverError: SwitchboardClientError | null = null;
  /** Dev mode without `user`: the id the server picked, kept so idempotency ids stay in one scope. */
  private anonUser: string | undefined;
  private offline = false;
  private order = 0;
  private unlistenNetwork: (() => void) | null = null;

  constructor(private readonly o: ResolvedOptions) {
    this.queue = new OfflineQueue(o.offlineQueueMax);
    this.requests = new Requests(o.maxInFlight, o.requestTimeoutMs);
    this.listenNetwork();
    // Start on a microtask so listeners attached right after connect() see `connecting`.
    queueMicrotask(() => {
      if (this.closed) return;
      this.setState('connecting');
      void this.open();
    });
  }

  get state(): ConnectionState {
    return this.state_;
  }

  get info(): ConnectedInfo | null {
    return this.info_ === null ? null : { ...this.info_ };
  }

  get connected(): boolean {
    return this.state_ === 'connected';
  }

  get closed(): boolean {
    return this.state_ === 'closed';
  }

  get maxFrameBytes(): number {
    return this.info_?.maxFrameBytes ?? 65_536;
  }

  get gapWaitMs(): number {
    return this.o.gapWaitMs;
  }

  room(name: string, options: RoomOptions = {}): Room {
    const since = checkRoomArgs(name, options);
    if (this.closed) throw new SwitchboardClientError('closed', 'the client is closed');
    const existing = this.rooms.get(name);
    if (existing !== undefined) return existing;
    const room = new Room(this, name, this.o.reorderBufferMax, since);
    this.rooms.set(name, room);
    if (this.connected) room.onConnected();
    return room;
  }

  close(): void {
    this.terminate(null);
  }

  // ---- RoomHost --------------------------------------------------------------------------------------

  request<R extends RequestType>(frame: OutRequest<R>, handlers: RequestHandlers<ReplyTo<R>>, timeoutMs?: number): number {
    if (this.closed) {
      handlers.onError(new SwitchboardClientError('closed', 'the client is closed'));
      return 0;
    }
    return this.requests.request(frame, handlers, timeoutMs);
  }

  recycle(error: SwitchboardClientError): void {
    if (this.ws !== null) this.lost(error);
  }

  forget(room: Room): void {
    if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
  }

  nextOrder(): number {
    return ++this.order;
  }

  // ---- state machine ------------------------------------------------------------------------------------

  private setState(to: ConnectionState, extra: Omit<StateChange, 'from' | 'to'> = {}): void {
    const from = this.state_;
    if (from === to && to !== 'reconnecting') return; // each new attempt is reported, even reconnecting → reconnecting
    this.state_ = to;
    this.events.emit('state', { from, to, ...extra });
  }

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.serverError = null;
    this.noticeUntil = null;
    let token: string | undefined;
    try {
      token = await this.token();
    } catch (err) {
      if (gen === this.gen) this.terminate(err as SwitchboardClientError);
      return;
    }
    if (gen !== this.gen || this.closed) return;
    let ws: WebSocketLike;
    try {
      ws = new this.o.WebSocket(this.o.url);
    } catch (err) {
      this.lost(new SwitchboardClientError('disconnected', 'could not open the WebSocket', { cause: err }));
      return;
    }
    this.ws = ws;
    this.armConnectTimer(gen, this.o.handshakeTimeoutMs, `no WebSocket handshake within ${this.o.handshakeTimeoutMs} ms`);
    let transportError: unknown;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.armConnectTimer(gen, this.o.connectTimeoutMs, `not connected within ${this.o.connectTimeoutMs} ms of the WebSocket handshake`);
      const user = token === undefined ? (this.o.user ?? this.anonUser) : undefined;
      this.send({ type: 'connect', id: CONNECT_ID, protocol: 1, batch: true, ...(token !== undefined ? { token } : user !== undefined ? { user } : {}) });
    };
    ws.onmessage = (ev) => {
      for (const text of String(ev.data).split('\n')) if (gen === this.gen) this.onData(text); // a batch frame: one JSON frame a line
    };
    ws.onerror = (ev) => {
      transportError = ev;
    };
    ws.onclose = (ev) => {
      if (gen === this.gen) this.onClose(ev.code, ev.reason, transportError);
    };
  }

  /** The current attempt's deadline: it is abandoned (its socket closed) and retried when it passes. */
  private armConnectTimer(gen: number, ms: number, message: string): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      if (gen === this.gen) this.lost(new SwitchboardClientError('timeout', message));
    }, ms);
  }

  private readonly token = (): Promise<string | undefined> => tokenFrom(this.o.token, this.o.getToken);

  private onData(data: string): void {
    this.armWatchdog(); // anything that arrives shows the connection is alive
    const f = parseServerFrame(data);
    if (f === null) return; // not a protocol v1 server frame: not ours to act on
    switch (f.type) {
      case 'ping':
        this.send({ type: 'pong' });
        return;
      case 'connected':
        return this.onConnected(f);
      case 'refreshed':
        this.armRefresh(f.expiresAt ?? null);
        this.events.emit('token', { expiresAt: f.expiresAt ?? null });
        return;
      case 'notice':
        this.noticeUntil = Date.now() + f.reconnectAfterMs;
        return;
      case 'message':
        return this.rooms.get(f.room)?.onMessage(f);
      case 'presence.diff':
      case 'catchup':
      case 'skipped':
        return this.rooms.get(f.room)?.onFrame(f);
      case 'direct':
        return this.events.emit('direct', { from: f.from, ts: f.ts, data: f.data });
      case 'error':
        return this.onErrorFrame(f);
      default:
        this.requests.handle(f);
    }
  }

  private onErrorFrame(f: ErrorFrame): void {
    if (this.requests.handle(f)) return;
    const error = fromErrorFrame(f);
    if (f.id === REFRESH_ID) {
      // The current token still holds: try again in 2 s; once it expires (4005) the reconnect gets a fresh one.
      this.events.emit('error', error);
      this.armRefresh(this.refresh.expiresAt, 2_000);
      return;
    }
    const closing = error.code === 'unauthorized' || error.code === 'token_expired' || error.code === 'token_revoked';
    if (f.id === CONNECT_ID || closing) {
      // The close that follows (4500, 4005, 4006) decides; a connect refused for another reason is retried.
      this.serverError = error;
      if (!closing) this.lost(error);
      return;
    }
    const room = f.room !== undefined ? this.rooms.get(f.room) : undefined;
    if (room !== undefined) room.onError(error);
    else this.events.emit('error', error);
  }

  private onConnected(f: ConnectedFrame): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.attempt = 0;
    this.info_ = {
      connId: f.connId,
      node: f.node,
      user: f.user,
      tenant: f.tenant,
      pingIntervalMs: f.pingIntervalMs,
      pingTimeoutMs: f.pingTimeoutMs,
      maxFrameBytes: f.maxFrameBytes,
    };
    if (this.o.token === undefined && this.o.getToken === undefined && this.o.user === undefined) this.anonUser = this.info_.user;
    this.setState('connected');
    this.armWatchdog();
    this.armRefresh(f.expiresAt ?? null);
    for (const room of [...this.rooms.values()]) room.onConnected(); // joins go first in the waiting line
    const gen = this.gen;
    this.requests.attach((frame) => this.send(frame, gen));
  }

  private onClose(code: number, reason: string, transportError: unknown): void {
    const server = this.serverError;
    if (isTerminalCloseCode(code) || server?.code === 'unauthorized') {
      return this.terminate(
        server ??
          new SwitchboardClientError('terminal_close', `the server closed the connection with ${code}${reason ? ` (${reason})` : ''}; not reconnecting`, {
            closeCode: code,
          }),
      );
    }
    const stale = staleToken(code, server?.code);
    if (stale !== null && this.o.getToken === undefined) {
      return this.terminate(new SwitchboardClientError(stale, `${stale}, and no getToken() for a fresh token`, { closeCode: code, retryable: false }));
    }
    const message = `connection closed (${code}${reason ? `: ${reason}` : ''})`;
    this.lost(
      server ?? new SwitchboardClientError('disconnected', message, { closeCode: code, ...(transportError !== undefined ? { cause: transportError } : {}) }),
    );
  }

  /** The connection is gone (closed, silent, refused): tell rooms and requests, then reconnect. */
  private lost(error: SwitchboardClientError): void {
    if (this.closed) return;
    const wasConnected = this.state_ === 'connected';
    this.dropSocket(false);
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    for (const room of [...this.rooms.values()]) room.onDisconnected();
    this.requests.detach(error);
    if (wasConnected || this.offline) this.setState('disconnected', { error });
    if (!this.offline) this.scheduleReconnect(error);
  }

  private scheduleReconnect(error?: SwitchboardClientError): void {
    this.attempt++;
    let delayMs = backoffDelay(this.attempt, this.o.backoff);
    if (this.noticeUntil !== null) delayMs = Math.max(delayMs, this.noticeUntil - Date.now());
    this.noticeUntil = null;
    this.setState('reconnecting', { attempt: this.attempt, delayMs, ...(error !== undefined ? { error } : {}) });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.open();
    }, delayMs);
  }

  /** Closed for good: by the app (error null) or by a terminal refusal. */
  private terminate(error: SwitchboardClientError | null): void {
    if (this.closed) return;
    this.dropSocket(true);
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.unlistenNetwork?.();
    this.unlistenNetwork = null;
    this.setState('closed', error !== null ? { error } : {});
    const closed = new SwitchboardClientError(
      'closed',
      error === null ? 'the client is closed' : `the client is closed: ${error.message}`,
      error !== null ? { cause: error } : {},
    );
    this.requests.failAll(closed);
    for (const room of [...this.rooms.values()]) room.shutdown(closed);
    for (const p of this.queue.takeAll()) p.reject(closed);
  }

  private dropSocket(graceful: boolean): void {
    this.gen++;
    for (const t of [this.connectTimer, this.watchdogTimer]) if (t !== null) clearTimeout(t);
    this.connectTimer = null;
    this.watchdogTimer = null;
    this.refresh.stop();
    const ws = this.ws;
    this.ws = null;
    if (ws !== null) shutSocket(ws, graceful);
  }

  /** With getToken and a token that expires: a `refresh` on this socket ahead of `expiresAt` (or after `delayMs`). */
  private armRefresh(expiresAt: number | null, delayMs?: number): void {
    if (this.o.getToken === undefined || this.state_ !== 'connected') return;
    const gen = this.gen;
    this.refresh.arm(
      expiresAt,
      () => this.token(),
      (token) => this.send({ type: 'refresh', id: REFRESH_ID, token }, gen),
      delayMs,
    );
  }

  private armWatchdog(): void {
    if (this.watchdogTimer !== null) clearTimeout(this.watchdogTimer);
    this.watchdogTimer = null;
    const grace = this.o.watchdogGraceMs;
    if (grace === null || this.info_ === null || this.state_ !== 'connected') return;
    const silence = this.info_.pingIntervalMs + grace;
    const gen = this.gen;
    this.watchdogTimer = setTimeout(() => {
      this.watchdogTimer = null;
      if (gen === this.gen) this.lost(new SwitchboardClientError('timeout', `no frame from the server for ${silence} ms (watchdog)`));
    }, silence);
  }

  private send(frame: OutFrame | Record<string, unknown>, gen = this.gen): void {
    const ws = this.ws;
    if (ws === null || gen !== this.gen) return;
    try {
      ws.send(JSON.stringify(frame));
    } catch (err) {
      queueMicrotask(() => {
        if (gen === this.gen) this.lost(new SwitchboardClientError('disconnected', 'send failed', { cause: err }));
      });
    }
  }

  /** Browsers: drop the connection when the machine goes offline, reconnect when it is back. */
  private listenNetwork(): void {
    this.unlistenNetwork = watchNetwork(
      () => {
        if (this.closed || this.offline) return;
        this.offline = true;
        this.lost(new SwitchboardClientError('disconnected', 'the network went offline'));
      },
      () => {
        if (this.closed || !this.offline) return;
        this.offline = false;
        this.attempt = 0;
        if (this.reconnectTimer === null && this.ws === null) this.scheduleReconnect();
      },
    );
  }
}
