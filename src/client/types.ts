/**
 * Public types of the client SDK: options, states, events, messages. The wire types themselves are
 * protocol/wire.ts (shared with the server, dependency-free, types only).
 */
import type { Json, JoinedFrame, PresenceDiffFrame, WirePresenceMember, WireMessage } from '../protocol/wire.js';
import type { BackoffOptions } from './backoff.js';
import type { SwitchboardClientError } from './errors.js';

export type { Json };

/** A room message as delivered to the app: exactly the wire `message` without `type`. */
export type Message = WireMessage;

/** A room position: the last message (seq, epoch) the app received. `seq` 0 means "before the first message". */
export interface Position {
  seq: number;
  epoch: string;
}

/** The subset of the WebSocket API the SDK uses (the browser's, or `ws`'s in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

/** Method-style parameter bivariance, so both the DOM's and `ws`'s event handler types fit. */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'reconnecting' | 'closed';

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** On `reconnecting`: the attempt about to be made, from 1. */
  attempt?: number;
  /** On `reconnecting`: how long the SDK waits before that attempt, ms. */
  delayMs?: number;
  /** Why the connection was lost or refused (on `disconnected`, `reconnecting`, and a terminal `closed`). */
  error?: SwitchboardClientError;
}

export interface ClientOptions {
  /** A JWT, used for every attempt. With a static token a `token_expired` close is terminal. */
  token?: string;
  /** Called before every connection attempt for a fresh token. Throwing (or returning a non-string) is terminal. */
  getToken?: () => string | Promise<string>;
  /** Dev mode only (no token): the user id to connect as. */
  user?: string;
  /** The WebSocket constructor. Default `globalThis.WebSocket` (browsers, Node ≥ 22); in Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect backoff (full jitter). Defaults: minMs 500, maxMs 20000, factor 2. */
  backoff?: Partial<BackoffOptions>;
  /** Dead-connection detection: reconnect if no frame arrives for `pingIntervalMs` (from the server) + `graceMs`. `false` disables it. */
  watchdog?: { graceMs?: number } | false;
  /** Bounds publishes held while the room is not joined (offline). Default max 1000. */
  offlineQueue?: { max?: number };
  /** Deadline of each request (publish attempt, join, history, presence), ms. Default 15000. */
  requestTimeoutMs?: number;
  /**
   * Time allowed for the WebSocket handshake (from opening the socket to its `open`), ms. Default 30000: an
   * attempt waiting in a busy node's accept queue is not abandoned (and queued again behind itself).
   */
  handshakeTimeoutMs?: number;
  /** Time allowed from the handshake to `connected` (the server's answer to `connect`), ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Requests sent and not yet answered on one connection (the server refuses more than 256). Default 128, max 250. */
  maxInFlight?: number;
  /** How long an out-of-order message waits for the gap before it to fill before history is asked, ms. Default 1000. */
  gapWaitMs?: number;
  /** Most out-of-order messages held per room. Default 1000. */
  reorderBufferMax?: number;
}

export interface ClientEvents {
  state: StateChange;
  direct: DirectMessage;
  /** Errors not tied to a promise or a room (e.g. a server error frame without an id, a refused token refresh). */
  error: SwitchboardClientError;
  /** The connection runs on a fresh token from `getToken` (a `refresh` the server accepted); `expiresAt` its expiry. */
  token: { expiresAt: number | null };
}

export interface DirectMessage {
  from: string;
  ts: number;
  data: Json;
}

export interface ResetEvent {
  room: string;
  /** Where the stream continues: live messages follow from `position.seq + 1`. */
  position: Position;
  /** What the app held before the reset (null if nothing). */
  previous: Position | null;
  /** `recovery`: the server could not recover the gap (window, max gap); `epoch`: the room's seq restarted; `gap`: history could not fill a gap. */
  reason: 'recovery' | 'epoch' | 'gap';
}

export interface JoinedEvent {
  room: string;
  position: Position;
  recovery: JoinedFrame['recovery'];
  missed: number;
}

/** A `presence.diff` frame without `type`. `truncated` is set when more than 50 users changed in one interval: the lists are empty; ask `presence()` again. */
export type PresenceDiff = Omit<PresenceDiffFrame, 'type'>;

/** One member in `presence()`: online users, then those who left recently. */
export type PresenceMember = WirePresenceMember;

export interface RoomEvents {
  message: Message;
  reset: ResetEvent;
  /**
   * The room is `conflate`d and this client fell behind: of seqs `from`…`to` it gets only the newest message of each
   * key (`keys` messages, next); `complete` false: the server no longer had every key's newest (read history).
   */
  catchup: { room: string; from: number; to: number; keys: number; complete: boolean };
  /** The room is `drop` and this client fell behind: seqs `from`…`to` are not sent (history has them). */
  skipped: { room: string; from: number; to: number };
  presence: PresenceDiff;
  error: SwitchboardClientError;
  joined: JoinedEvent;
}

export interface PublishResult {
  seq: number;
  epoch: string;
  /** True when the server had already stored this idem (a retry after a lost ack). */
  duplicate: boolean;
}

export interface HistoryQuery {
  before?: number;
  after?: number;
  /** 1–1000, default 50. */
  limit?: number;
}

export interface HistoryPage {
  messages: Message[];
  more: boolean;
}

export interface RoomOptions {
  /** Resume from a position the app persisted (e.g. across a page reload). */
  since?: Position;
}

/** What `client.send()` resolves with: the service (or its durable queue) has the message. */
export interface SendResult {
  topic: string;
  /** The idempotency id the service sees (the one given, or the SDK's random one). */
  idem: string;
  /** True when the service is durable: the message is queued in JetStream until an instance acks it. */
  durable: boolean;
  /** True when a durable send with this idem was already queued (it is handled once). */
  duplicate: boolean;
}
