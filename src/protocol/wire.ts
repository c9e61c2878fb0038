/**
 * The wire types of protocol v1 that the server and both SDKs share: JSON values, request ids, the room
 * message as clients see it, and every server frame as one discriminated union (on `type`). Types only and
 * dependency-free, so the browser SDK can import them without pulling in server code. The server builds these
 * frames in protocol/encode.ts; the client SDK checks incoming ones with protocol/parse.ts.
 * docs/protocol.md shows every frame with an example.
 */

/** A JSON value as carried in message payloads (`data`). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The `id` of a request, echoed by its reply. */
export type RequestId = number | string;

/** A room message as carried in `message` and `history.page` frames (the tenant is implicit). */
export interface WireMessage {
  room: string;
  /** Contiguous per room and epoch, starting at 1. */
  seq: number;
  /** Identifies one continuous run of `seq`; changes only if the sequence had to be restarted. */
  epoch: string;
  /** User id of the publisher (`"server"` for HTTP/backend publishes unless they name one). */
  from: string;
  /** Server timestamp (ms since the Unix epoch) assigned together with the seq. */
  ts: number;
  /** The event name given by the publisher (e.g. a Pusher event); the key is absent when none was given. */
  event?: string;
  /**
   * The conflation key given by the publisher: in a room with the `conflate` delivery policy, a member that falls
   * behind gets only the newest message of each key (see `catchup`). Absent when none was given.
   */
  key?: string;
  data: Json;
}

export interface ConnectedFrame {
  type: 'connected';
  id?: RequestId;
  connId: string;
  node: string;
  user: string;
  tenant: string;
  protocol: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxFrameBytes: number;
  /** When the connection's token expires (ms since the epoch); absent when it does not. Send `refresh` before. */
  expiresAt?: number;
}
export interface RefreshedFrame {
  type: 'refreshed';
  id: RequestId;
  /** The new token's expiry (ms since the epoch); absent when it does not expire. */
  expiresAt?: number;
}
export interface JoinedFrame {
  type: 'joined';
  id: RequestId;
  room: string;
  seq: number;
  epoch: string;
  recovery: 'none' | 'recovered' | 'reset';
  missed: number;
}
export interface LeftFrame {
  type: 'left';
  id: RequestId;
  room: string;
}
export interface AckFrame {
  type: 'ack';
  id: RequestId;
  room: string;
  seq: number;
  epoch: string;
  duplicate: boolean;
}
export interface MessageFrame extends WireMessage {
  type: 'message';
}
export interface HistoryPageFrame {
  type: 'history.page';
  id: RequestId;
  room: string;
  messages: WireMessage[];
  more: boolean;
}
export interface WirePresenceMember {
  user: string;
  online: boolean;
  connections: number;
  lastSeen: number;
}
export interface PresenceListFrame {
  type: 'presence.list';
  id: RequestId;
  room: string;
  members: WirePresenceMember[];
}
export interface PresenceDiffFrame {
  type: 'presence.diff';
  room: string;
  joined: { user: string; at: number }[];
  left: { user: string; lastSeen: number }[];
  /** Present when more than 50 users changed in one interval: lists are empty, counts given instead. */
  truncated?: { joined: number; left: number };
}
export interface DirectFrame {
  type: 'direct';
  from: string;
  ts: number;
  data: Json;
}
/** A `send` was accepted: by a running instance (core) or by the service's durable queue (durable). */
export interface SentFrame {
  type: 'sent';
  id: RequestId;
  topic: string;
  idem: string;
  durable: boolean;
  duplicate: boolean;
}
export interface RpcResultFrame {
  type: 'rpc.result';
  id: RequestId;
  topic: string;
  data: Json;
}
export interface PingFrame {
  type: 'ping';
}
export interface PongFrame {
  type: 'pong';
  id?: RequestId;
}
/**
 * Sent to a member of a `conflate` room that fell behind, when it reads again: of the seqs `from`…`to` it was not
 * sent, it now gets the newest message of each key, `keys` message frames in seq order right after this frame; the
 * stream then continues at `to` + 1. `complete` is false when the node no longer held every key's newest message
 * (more keys than it keeps per room): the app may read history to fill in.
 */
export interface CatchupFrame {
  type: 'catchup';
  room: string;
  from: number;
  to: number;
  keys: number;
  complete: boolean;
}
/**
 * Sent to a member of a `drop` room that fell behind, when it reads again: seqs `from`…`to` were not sent to it
 * (history has them); the stream continues at `to` + 1, the room's newest message, which follows this frame.
 */
export interface SkippedFrame {
  type: 'skipped';
  room: string;
  from: number;
  to: number;
}
export interface NoticeFrame {
  type: 'notice';
  code: 'reconnect';
  reason: string;
  reconnectAfterMs: number;
}
export interface ErrorFrame {
  type: 'error';
  id?: RequestId;
  code: string;
  message: string;
  retryable: boolean;
  room?: string;
}

export type ServerFrame =
  | ConnectedFrame
  | RefreshedFrame
  | JoinedFrame
  | LeftFrame
  | AckFrame
  | MessageFrame
  | CatchupFrame
  | SkippedFrame
  | HistoryPageFrame
  | PresenceListFrame
  | PresenceDiffFrame
  | DirectFrame
  | SentFrame
  | RpcResultFrame
  | PingFrame
  | PongFrame
  | NoticeFrame
  | ErrorFrame;

export type ServerFrameType = ServerFrame['type'];

/** The server frame with `type` T. */
export type ServerFrameOf<T extends ServerFrameType> = Extract<ServerFrame, { type: T }>;
