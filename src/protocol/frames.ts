/**
 * Protocol v1 frames (JSON text). Client frames are validated here with zod; server frames are
 * plain typed objects built in protocol/encode.ts. docs/protocol.md shows every frame with an example.
 */
import { z } from 'zod';
import type { Json } from '../engines/types.js';

export const PROTOCOL_VERSION = 1;
/**
 * The one WebSocket subprotocol name of protocol v1 (JSON text frames). An upgrade that offers no
 * subprotocol is accepted as v1 (back-compat); one that offers a list must include this name, which the
 * node then selects; any other list is refused with HTTP 400 before the handshake.
 */
export const SUBPROTOCOL = 'switchboard.v1.json';

const requestId = z.union([z.number().int().min(0).max(2 ** 53 - 1), z.string().min(1).max(64)]);
const roomField = z.string().max(256);
const seq = z.number().int().min(0).max(2 ** 53 - 1);
/**
 * `data` is whatever JSON the client sent: the frame came from JSON.parse (so it is JSON by construction)
 * and its nesting was bounded before validation (protocol/json-depth.ts), so it is not walked again here.
 */
const json = z.custom<Json>((v) => v !== undefined, 'data is required');

export const clientFrameSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('connect'),
    id: requestId.optional(),
    token: z.string().max(16_384).optional(),
    /** Dev mode only: the anonymous user's display id. */
    user: z.string().max(128).optional(),
    protocol: z.number().int().optional(),
  }),
  z.object({
    type: z.literal('join'),
    id: requestId,
    room: roomField,
    since: z.object({ seq, epoch: z.string().min(1).max(64) }).optional(),
  }),
  z.object({ type: z.literal('leave'), id: requestId, room: roomField }),
  z.object({
    type: z.literal('publish'),
    id: requestId,
    room: roomField,
    data: json,
    idem: z.string().max(256).optional(),
  }),
  z.object({
    type: z.literal('history'),
    id: requestId,
    room: roomField,
    before: seq.optional(),
    after: seq.optional(),
    limit: z.number().int().optional(),
  }),
  z.object({ type: z.literal('presence'), id: requestId, room: roomField }),
  /** To a backend service topic `<service>.<name>`: handled by exactly one instance (docs/backend.md). */
  z.object({
    type: z.literal('send'),
    id: requestId,
    topic: z.string().max(256),
    data: json,
    idem: z.string().max(256).optional(),
  }),
  /** Request/reply with one instance of a service; answered `rpc.result` or an error. */
  z.object({
    type: z.literal('rpc'),
    id: requestId,
    topic: z.string().max(256),
    data: json,
    timeoutMs: z.number().int().optional(),
  }),
  z.object({ type: z.literal('ping'), id: requestId.optional() }),
  z.object({ type: z.literal('pong') }),
]);

export type ClientFrame = z.infer<typeof clientFrameSchema>;
export type ClientFrameType = ClientFrame['type'];
export type RequestId = number | string;
export const CLIENT_FRAME_TYPES: readonly string[] = [
  'connect', 'join', 'leave', 'publish', 'history', 'presence', 'send', 'rpc', 'ping', 'pong',
];

/** A message as carried in `message` and `history.page` frames (tenant is implicit). */
export interface WireMessage {
  room: string;
  seq: number;
  epoch: string;
  from: string;
  ts: number;
  data: Json;
}

export type ServerFrame =
  | { type: 'connected'; id?: RequestId; connId: string; node: string; user: string; tenant: string;
      protocol: number; pingIntervalMs: number; pingTimeoutMs: number; maxFrameBytes: number }
  | { type: 'joined'; id: RequestId; room: string; seq: number; epoch: string;
      recovery: 'none' | 'recovered' | 'reset'; missed: number }
  | { type: 'left'; id: RequestId; room: string }
  | { type: 'ack'; id: RequestId; room: string; seq: number; epoch: string; duplicate: boolean }
  | ({ type: 'message' } & WireMessage)
  | { type: 'history.page'; id: RequestId; room: string; messages: WireMessage[]; more: boolean }
  | { type: 'presence.list'; id: RequestId; room: string;
      members: { user: string; online: boolean; connections: number; lastSeen: number }[] }
  | { type: 'presence.diff'; room: string; joined: { user: string; at: number }[];
      left: { user: string; lastSeen: number }[];
      /** Present when more than 50 users changed in one interval: lists are empty, counts given instead. */
      truncated?: { joined: number; left: number } }
  | { type: 'direct'; from: string; ts: number; data: Json }
  /** A `send` was accepted: by a running instance (core) or by the service's durable queue (durable). */
  | { type: 'sent'; id: RequestId; topic: string; idem: string; durable: boolean; duplicate: boolean }
  | { type: 'rpc.result'; id: RequestId; topic: string; data: Json }
  | { type: 'ping' }
  | { type: 'pong'; id?: RequestId }
  | { type: 'notice'; code: 'reconnect'; reason: string; reconnectAfterMs: number }
  | { type: 'error'; id?: RequestId; code: string; message: string; retryable: boolean; room?: string };
