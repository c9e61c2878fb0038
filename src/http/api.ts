/**
 * The HTTP server API for backends (API key in `Authorization: Bearer`):
 *   POST /api/publish                     to a room (sequenced, stored) or to a user (direct)
 *   GET  /api/rooms/:room/history          ?tenant&before|after&limit
 *   GET  /api/rooms/:room/presence         ?tenant
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RoomRef } from '../engines/types.js';
import type { NodeContext } from '../gateway/context.js';
import { toWire } from '../protocol/encode.js';
import { exceedsDepth, MAX_JSON_DEPTH } from '../protocol/json-depth.js';
import { isIdemId, isRoomName, isTenantName, isUserId, ROOM_NAME_RULE, TENANT_NAME_RULE, USER_ID_RULE } from '../protocol/names.js';
import { HttpError, readJson, sendJson } from './respond.js';
import { nodeHoleFilling } from '../gateway/history-fill.js';
import { readHistory } from '../gateway/history.js';

const json = z.json();
export const publishSchema = z
  .object({
    tenant: z.string().refine(isTenantName, TENANT_NAME_RULE).default('default'),
    room: z.string().refine(isRoomName, ROOM_NAME_RULE).optional(),
    user: z.string().refine(isUserId, USER_ID_RULE).optional(),
    from: z.string().refine(isUserId, USER_ID_RULE).default('server'),
    idem: z.string().refine(isIdemId, '1–128 printable ASCII characters').optional(),
    data: json,
  })
  .strict()
  .refine((b) => (b.room === undefined) !== (b.user === undefined), 'give exactly one of room or user');

export class Api {
  private readonly apiKey: Buffer | null;

  constructor(
    private readonly ctx: NodeContext,
    private readonly isDraining: () => boolean,
  ) {
    this.apiKey = ctx.config.apiKey !== undefined ? Buffer.from(ctx.config.apiKey) : null;
  }

  /** Returns the route label for metrics, or null when the path is not an API route. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<string | null> {
    if (path === '/api/publish') {
      this.method(req, 'POST');
      this.authorize(req);
      await this.publish(req, res);
      return 'publish';
    }
    const m = /^\/api\/rooms\/([^/]+)\/(history|presence)$/.exec(path);
    if (m === null) return null;
    this.method(req, 'GET');
    this.authorize(req);
    let room: string;
    try {
      room = decodeURIComponent(m[1]!);
    } catch {
      throw new HttpError(400, 'bad_room', 'room name is not valid percent-encoding');
    }
    const ref = this.roomRef(room, query);
    if (m[2] === 'history') await this.history(res, ref, query);
    else sendJson(res, 200, { room: ref.room, tenant: ref.tenant, members: await this.ctx.engines.presence.members(ref) });
    return m[2]!;
  }

  private method(req: IncomingMessage, expected: string): void {
    if (req.method !== expected) throw new HttpError(405, 'bad_request', `use ${expected}`);
  }

  /** Throws 401 unless the request carries the API key (open in --dev without --api-key). */
  authorize(req: IncomingMessage): void {
    if (this.apiKey === null) {
      if (this.ctx.config.dev) return; // announced at start-up: dev mode without --api-key leaves the API open
      throw new HttpError(401, 'unauthorized', 'the HTTP API is disabled: start the node with --api-key');
    }
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== this.apiKey.length || !timingSafeEqual(given, this.apiKey)) {
      throw new HttpError(401, 'unauthorized', 'missing or wrong API key (Authorization: Bearer <key>)');
    }
  }

  private roomRef(room: string, query: URLSearchParams): RoomRef {
    const tenant = query.get('tenant') ?? 'default';
    if (!isTenantName(tenant)) throw new HttpError(400, 'bad_request', `tenant: ${TENANT_NAME_RULE}`);
    if (!isRoomName(room)) throw new HttpError(400, 'bad_room', `room: ${ROOM_NAME_RULE}`);
    return { tenant, room };
  }

  private async publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.isDraining()) throw new HttpError(503, 'unavailable', 'node is shutting down; publish through another node');
    const body = await readJson(req, this.ctx.config.maxHttpBodyBytes);
    if (exceedsDepth(body, MAX_JSON_DEPTH)) throw new HttpError(400, 'bad_request', `body nests deeper than ${MAX_JSON_DEPTH} levels`);
    const parsed = publishSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, 'bad_request', issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body');
    }
    const b = parsed.data;
    if (b.user !== undefined) {
      await this.ctx.publisher.toUser(b.tenant, b.user, b.from, b.data);
      sendJson(res, 202, { tenant: b.tenant, user: b.user, status: 'sent' });
      return;
    }
    const ref = { tenant: b.tenant, room: b.room! };
    const { message, duplicate } = await this.ctx.publisher.toRoom(ref, { from: b.from, data: b.data, ...(b.idem !== undefined ? { idem: b.idem } : {}) });
    if (duplicate) this.ctx.metrics.duplicates.inc();
    else this.ctx.metrics.published.inc({ source: 'http' });
    sendJson(res, 200, { tenant: ref.tenant, room: ref.room, seq: message.seq, epoch: message.epoch, ts: message.ts, duplicate });
  }

  private async history(res: ServerResponse, ref: RoomRef, query: URLSearchParams): Promise<void> {
    const num = (name: string, min: number, max: number): number | undefined => {
      const raw = query.get(name);
      if (raw === null) return undefined;
      if (!/^\d+$/.test(raw)) throw new HttpError(400, 'bad_request', `${name} must be a non-negative integer`);
      const v = Number(raw);
      if (v < min || v > max) throw new HttpError(400, 'bad_request', `${name} must be between ${min} and ${max}`);
      return v;
    };
    const limit = num('limit', 1, 1000) ?? 50;
    const before = num('before', 0, Number.MAX_SAFE_INTEGER);
    const after = num('after', 0, Number.MAX_SAFE_INTEGER);
    if (before !== undefined && after !== undefined) throw new HttpError(400, 'bad_request', 'give before or after, not both');
    let page;
    try {
      page = await readHistory(this.ctx.engines.roomLog, nodeHoleFilling(this.ctx), ref, { limit, ...(before !== undefined ? { before } : {}), ...(after !== undefined ? { after } : {}) });
    } catch {
      throw new HttpError(503, 'unavailable', 'history is unavailable');
    }
    sendJson(res, 200, { tenant: ref.tenant, room: ref.room, messages: page.messages.map(toWire), more: page.more });
  }
}
