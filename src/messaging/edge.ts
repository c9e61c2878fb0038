/**
 * The one request edge. Every way in — the WebSocket `publish`, `history` and `presence` frames, the HTTP
 * API and the backend API on NATS — ends here, so a request is validated once, by one set of rules, fails
 * with one set of codes (protocol/errors.ts) and is counted in one place:
 *   - `publish` / `history` / `presence` validate what the transports have in common (names, idempotency
 *     id, event name, JSON depth, page bounds), run the operation, map a backing-service failure to `unavailable`, and
 *     count accepted publishes (`switchboard_messages_published_total{source}`) and duplicates;
 *   - `refused` is where every error a caller is answered with gets its code and its count
 *     (`switchboard_errors_total{code}`); anything that is not a SwitchboardError is logged at error level
 *     with its cause and answered `internal`.
 * The transports only turn their syntax (a frame, an HTTP body and query, a NATS request) into these calls,
 * add their own checks (a connection's token rights and memberships, the API key), and turn the result or
 * the SwitchboardError into their own form (a frame, an HTTP status from protocol/errors.ts, a NATS reply).
 */
import { z } from 'zod';
import type { HistoryPage } from '../engines/messagestore/messagestore.js';
import type { PresenceStore, RoomMember } from '../engines/presence/presence.js';
import type { PublishInput, RoomLog } from '../engines/roomlog/roomlog.js';
import type { Json, RoomRef } from '../engines/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { SwitchboardError, type ErrorCode } from '../protocol/errors.js';
import { exceedsDepth, MAX_JSON_DEPTH } from '../protocol/json-depth.js';
import {
  EVENT_NAME_RULE,
  IDEM_RULE,
  isEventName,
  isIdemId,
  isMessageKey,
  MESSAGE_KEY_RULE,
  isRoomName,
  isTenantName,
  isUserId,
  ROOM_NAME_RULE,
  TENANT_NAME_RULE,
  USER_ID_RULE,
} from '../protocol/names.js';
import type { HoleFilling } from './history-fill.js';
import { readHistory } from './history.js';
import type { Publisher } from './publisher.js';
import type { RoomPolicies } from './room-policy.js';

/** Which transport a request came through (a label of the publish counter). */
export type Source = 'ws' | 'http' | 'nats' | 'pusher';

/** A publish to a room (sequenced, durable, fanned out) or to a user's connections (direct). */
export type PublishRequest =
  | {
      readonly tenant: string;
      readonly room: string;
      readonly from: string;
      readonly data: Json;
      readonly idem?: string;
      /** The event name (Pusher's; optional in protocol v1). */
      readonly event?: string;
      /** The conflation key (protocol/wire.ts WireMessage.key). */
      readonly key?: string;
      /** A connection (socket id) the message is not delivered to. */
      readonly except?: string;
    }
  | { readonly tenant: string; readonly user: string; readonly from: string; readonly data: Json; readonly event?: string };

export type PublishReply =
  { tenant: string; room: string; seq: number; epoch: string; ts: number; duplicate: boolean } | { tenant: string; user: string; status: 'sent' };

export interface HistoryRequest {
  readonly limit?: number;
  readonly before?: number;
  readonly after?: number;
}

export const HISTORY_MAX_LIMIT = 1000;
export const HISTORY_DEFAULT_LIMIT = 50;

export interface EdgeDeps {
  readonly publisher: Publisher;
  readonly roomLog: RoomLog;
  /** History reads: the store, and the durable log for what the store lacks yet (history-fill.ts). */
  readonly holes: HoleFilling;
  readonly presence: PresenceStore;
  /** Each room's publish cap (and delivery policy, which the rooms apply). */
  readonly policies: RoomPolicies;
  readonly metrics: Pick<Metrics, 'published' | 'duplicates' | 'error'>;
  readonly log: Logger;
}

/** The body of POST /api/publish and of `sb.api.publish` (the same JSON on both). */
const publishBodySchema = z
  .object({
    tenant: z.string().default('default'),
    room: z.string().optional(),
    user: z.string().optional(),
    from: z.string().default('server'),
    idem: z.string().optional(),
    event: z.string().optional(),
    key: z.string().optional(),
    data: z.json(),
  })
  .strict();

/** The body of `sb.api.presence` (HTTP takes the same fields from the path and query). */
const roomBodySchema = z.object({ tenant: z.string().default('default'), room: z.string() }).strict();

export class Edge {
  constructor(private readonly deps: EdgeDeps) {}

  /** Turns an HTTP or NATS publish body into a request; bad shapes are `bad_request`, names as in `publish`. */
  parsePublish(body: unknown): PublishRequest {
    checkDepth(body);
    const parsed = publishBodySchema.safeParse(body);
    if (!parsed.success) throw schemaError(parsed.error);
    const b = parsed.data;
    if ((b.room === undefined) === (b.user === undefined)) throw new SwitchboardError('bad_request', 'give exactly one of room or user');
    if (b.user !== undefined) {
      if (b.idem !== undefined) throw new SwitchboardError('bad_request', 'idem: direct messages are not sequenced; idem applies to rooms');
      if (b.event !== undefined) throw new SwitchboardError('bad_request', 'event: applies to room messages, not direct messages');
      if (b.key !== undefined) throw new SwitchboardError('bad_request', 'key: applies to room messages, not direct messages');
      return { tenant: b.tenant, user: b.user, from: b.from, data: b.data };
    }
    return {
      tenant: b.tenant,
      room: b.room!,
      from: b.from,
      data: b.data,
      ...(b.idem !== undefined ? { idem: b.idem } : {}),
      ...(b.event !== undefined ? { event: b.event } : {}),
      ...(b.key !== undefined ? { key: b.key } : {}),
    };
  }

  /** Turns a `{tenant, room}` body into a room reference (validated as every room reference is). */
  parseRoom(body: unknown): RoomRef {
    checkDepth(body);
    const parsed = roomBodySchema.safeParse(body);
    if (!parsed.success) throw schemaError(parsed.error);
    return checkRoomRef(parsed.data.tenant, parsed.data.room);
  }

  /** Publishes to a room or a user. Throws SwitchboardError; the caller answers through `refused`. */
  async publish(source: Source, req: PublishRequest): Promise<PublishReply> {
    checkPublish(req);
    const { publisher, metrics } = this.deps;
    if ('user' in req) {
      await publisher.toUser(req.tenant, req.user, req.from, req.data, req.event);
      return { tenant: req.tenant, user: req.user, status: 'sent' };
    }
    const ref = { tenant: req.tenant, room: req.room };
    const input: { -readonly [K in keyof PublishInput]: PublishInput[K] } = {
      from: req.from,
      data: req.data,
      ...(req.idem !== undefined ? { idem: req.idem } : {}),
      ...(req.event !== undefined ? { event: req.event } : {}),
      ...(req.key !== undefined ? { key: req.key } : {}),
    };
    const cap = this.deps.policies.of(ref.tenant, ref.room).maxPublishRate;
    if (cap > 0) input.maxPerSecond = cap;
    const { message, duplicate } = await publisher.toRoom(ref, input, req.except);
    if (duplicate) metrics.duplicates.inc();
    else metrics.published.inc({ source });
    return { tenant: ref.tenant, room: ref.room, seq: message.seq, epoch: message.epoch, ts: message.ts, duplicate };
  }

  /** Closes a user's Pusher connections on every node (Pusher's terminate_connections). */
  async terminateUser(tenant: string, user: string): Promise<void> {
    if (!isTenantName(tenant)) throw new SwitchboardError('bad_request', `tenant: ${TENANT_NAME_RULE}`);
    if (!isUserId(user)) throw new SwitchboardError('bad_request', `user: ${USER_ID_RULE}`);
    await this.deps.publisher.terminateUser(tenant, user);
  }

  /** One page of a room's history (protocol.md `history`, GET /api/rooms/:room/history). */
  async history(ref: RoomRef, q: HistoryRequest): Promise<HistoryPage> {
    checkRoomRef(ref.tenant, ref.room);
    const limit = q.limit ?? HISTORY_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_MAX_LIMIT)
      throw new SwitchboardError('bad_request', `limit must be between 1 and ${HISTORY_MAX_LIMIT}`);
    if (q.before !== undefined && q.after !== undefined) throw new SwitchboardError('bad_request', 'give before or after, not both');
    for (const k of ['before', 'after'] as const) {
      const v = q[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new SwitchboardError('bad_request', `${k} must be a non-negative integer`);
    }
    try {
      return await readHistory(this.deps.roomLog, this.deps.holes, ref, {
        limit,
        ...(q.before !== undefined ? { before: q.before } : {}),
        ...(q.after !== undefined ? { after: q.after } : {}),
      });
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      throw new SwitchboardError('unavailable', 'history is unavailable', { cause: err });
    }
  }

  /** Who is in a room (online, and recently left). */
  async presence(ref: RoomRef): Promise<RoomMember[]> {
    checkRoomRef(ref.tenant, ref.room);
    try {
      return await this.deps.presence.members(ref);
    } catch (err) {
      throw new SwitchboardError('unavailable', 'presence is unavailable', { cause: err });
    }
  }

  /**
   * The one place that counts an error answered to a caller, on any transport. Returns the error to
   * answer with: the SwitchboardError itself, or `internal` for anything else (logged at error level).
   */
  refused(err: unknown, context: Record<string, unknown> = {}): SwitchboardError {
    const e = this.asError(err, context);
    this.deps.metrics.error(e.code);
    return e;
  }

  /** As `refused`, for a caller that counts the code itself through `counted` when it answers. */
  asError(err: unknown, context: Record<string, unknown> = {}): SwitchboardError {
    if (!(err instanceof SwitchboardError)) {
      this.deps.log.error({ err, ...context }, 'request failed');
      return new SwitchboardError('internal', 'internal error', { cause: err });
    }
    // A backing service failed: the caller is told `unavailable`, the operator sees why (once a second).
    if (err.code === 'unavailable' && err.cause !== undefined) this.warnSampled(err.message, err.cause);
    return err;
  }

  private readonly lastWarn = new Map<string, { at: number; suppressed: number }>();

  /** Logs a backing-service failure at warn, at most once a second per kind, with how many were suppressed. */
  private warnSampled(message: string, cause: unknown): void {
    const now = Date.now();
    const last = this.lastWarn.get(message);
    if (last !== undefined && now - last.at < 1_000) {
      last.suppressed++;
      return;
    }
    this.deps.log.warn({ err: cause, suppressed: last?.suppressed ?? 0 }, message);
    if (this.lastWarn.size > 100) this.lastWarn.clear();
    this.lastWarn.set(message, { at: now, suppressed: 0 });
  }

  /** Counts an error code answered without an exception (a transport's own refusal). */
  counted(code: ErrorCode): void {
    this.deps.metrics.error(code);
  }
}

/** Names every publish must satisfy, whichever transport it came through. */
function checkPublish(req: PublishRequest): void {
  if (!isTenantName(req.tenant)) throw new SwitchboardError('bad_request', `tenant: ${TENANT_NAME_RULE}`);
  if ('user' in req) {
    if (!isUserId(req.user)) throw new SwitchboardError('bad_request', `user: ${USER_ID_RULE}`);
  } else {
    if (!isRoomName(req.room)) throw new SwitchboardError('bad_room', `room: ${ROOM_NAME_RULE}`);
    if (req.idem !== undefined && !isIdemId(req.idem)) throw new SwitchboardError('bad_request', `idem: ${IDEM_RULE}`);
  }
  if (req.event !== undefined && !isEventName(req.event)) throw new SwitchboardError('bad_request', `event: ${EVENT_NAME_RULE}`);
  if ('key' in req && req.key !== undefined && !isMessageKey(req.key)) throw new SwitchboardError('bad_request', `key: ${MESSAGE_KEY_RULE}`);
  if (!isUserId(req.from)) throw new SwitchboardError('bad_request', `from: ${USER_ID_RULE}`);
  // The data's depth is bounded where the transport parsed it (the whole frame, or the body in parsePublish):
  // walking it again per publish would be the same work twice on the hot path.
}

function checkRoomRef(tenant: string, room: string): RoomRef {
  if (!isTenantName(tenant)) throw new SwitchboardError('bad_request', `tenant: ${TENANT_NAME_RULE}`);
  if (!isRoomName(room)) throw new SwitchboardError('bad_room', `room: ${ROOM_NAME_RULE}`);
  return { tenant, room };
}

function checkDepth(value: unknown): void {
  if (exceedsDepth(value, MAX_JSON_DEPTH)) throw new SwitchboardError('bad_request', `nests deeper than ${MAX_JSON_DEPTH} levels`);
}

function schemaError(error: z.ZodError): SwitchboardError {
  const issue = error.issues[0];
  return new SwitchboardError('bad_request', issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body');
}
