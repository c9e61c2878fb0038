/**
 * Protocol v1 client frames (JSON text), validated by the server with zod. Server frames and the other wire
 * types are in protocol/wire.ts (dependency-free, shared with the SDKs) and re-exported here.
 * docs/protocol.md shows every frame with an example.
 */
import { z } from 'zod';
import type { Json } from './wire.js';

export type { Json, RequestId, ServerFrame, ServerFrameOf, ServerFrameType, WireMessage } from './wire.js';

export const PROTOCOL_VERSION = 1;
/**
 * The one WebSocket subprotocol name of protocol v1 (JSON text frames). An upgrade that offers no
 * subprotocol is accepted as v1 (back-compat); one that offers a list must include this name, which the
 * node then selects; any other list is refused with HTTP 400 before the handshake.
 */
export const SUBPROTOCOL = 'switchboard.v1.json';

const requestId = z.union([
  z
    .number()
    .int()
    .min(0)
    .max(2 ** 53 - 1),
  z.string().min(1).max(64),
]);
const roomField = z.string().max(256);
const seq = z
  .number()
  .int()
  .min(0)
  .max(2 ** 53 - 1);
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
    /** Sent to the connect hook (docs/hooks.md) with a connect without a token. */
    data: json.optional(),
    /** Opt in to batch frames: several server frames in one WebSocket frame, joined by "\n" (docs/protocol.md §2.7). */
    batch: z.boolean().optional(),
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
    /** An event name for the message (protocol/names.ts EVENT_NAME_RULE, checked by the edge). */
    event: z.string().max(256).optional(),
    /** A conflation key (protocol/names.ts KEY_RULE, checked by the edge): see the `conflate` delivery policy. */
    key: z.string().max(256).optional(),
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
  /** A newer token for this connection (same user and tenant), before the current one expires. */
  z.object({ type: z.literal('refresh'), id: requestId, token: z.string().min(1).max(16_384) }),
  z.object({ type: z.literal('ping'), id: requestId.optional() }),
  z.object({ type: z.literal('pong') }),
]);

export type ClientFrame = z.infer<typeof clientFrameSchema>;
export type ClientFrameType = ClientFrame['type'];
export const CLIENT_FRAME_TYPES: readonly string[] = ['connect', 'join', 'leave', 'publish', 'history', 'presence', 'send', 'rpc', 'refresh', 'ping', 'pong'];
