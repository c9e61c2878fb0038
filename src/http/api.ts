/**
 * The HTTP server API for backends (API key in `Authorization: Bearer`):
 *   POST /api/publish                     to a room (sequenced, stored) or to a user (direct)
 *   GET  /api/rooms/:room/history          ?tenant&before|after&limit
 *   GET  /api/rooms/:room/presence         ?tenant
 *   POST /api/revoke                      a token (by `jti`) or a user's tokens, on every node, until they expire
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Revocation, RevocationStore } from '../engines/revocations/revocations.js';
import type { RoomRef } from '../engines/types.js';
import type { Edge } from '../messaging/edge.js';
import { toWire } from '../protocol/encode.js';
import { isTenantName, isUserId } from '../protocol/names.js';
import { HttpError, readJson, sendJson } from './respond.js';

/** What the HTTP API needs from its node. */
export interface ApiDeps {
  readonly edge: Edge;
  readonly config: Pick<Config, 'apiKey' | 'dev' | 'maxHttpBodyBytes' | 'revocationTtlMs'>;
  readonly isDraining: () => boolean;
  readonly revocations: Pick<RevocationStore, 'revoke'>;
}

/** POST /api/revoke: exactly one of `user` and `jti`; `expiresAt` (ms) is how long it holds (the token's `exp`). */
const revokeSchema = z
  .object({
    tenant: z.string().refine(isTenantName, 'invalid tenant name').optional(),
    user: z.string().refine(isUserId, 'invalid user id').optional(),
    jti: z.string().min(1).max(256).optional(),
    expiresAt: z.number().int().positive().optional(),
  })
  .strict()
  .refine((b) => (b.user === undefined) !== (b.jti === undefined), 'give exactly one of user and jti');

export class Api {
  private readonly apiKey: Buffer | null;

  constructor(private readonly deps: ApiDeps) {
    this.apiKey = deps.config.apiKey !== undefined ? Buffer.from(deps.config.apiKey) : null;
  }

  /** Returns the route label for metrics, or null when the path is not an API route. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<string | null> {
    if (path === '/api/publish') {
      this.method(req, 'POST');
      this.authorize(req);
      await this.publish(req, res);
      return 'publish';
    }
    if (path === '/api/revoke') {
      this.method(req, 'POST');
      this.authorize(req);
      await this.revoke(req, res);
      return 'revoke';
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
    const ref = { tenant: query.get('tenant') ?? 'default', room };
    if (m[2] === 'history') await this.history(res, ref, query);
    else sendJson(res, 200, { room: ref.room, tenant: ref.tenant, members: await this.deps.edge.presence(ref) });
    return m[2]!;
  }

  private method(req: IncomingMessage, expected: string): void {
    if (req.method !== expected) throw new HttpError(405, 'bad_request', `use ${expected}`);
  }

  /** Throws 401 unless the request carries the API key (open in --dev without --api-key). */
  authorize(req: IncomingMessage): void {
    if (this.apiKey === null) {
      if (this.deps.config.dev) return; // announced at start-up: dev mode without --api-key leaves the API open
      throw new HttpError(401, 'unauthorized', 'the HTTP API is disabled: start the node with --api-key');
    }
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== this.apiKey.length || !timingSafeEqual(given, this.apiKey)) {
      throw new HttpError(401, 'unauthorized', 'missing or wrong API key (Authorization: Bearer <key>)');
    }
  }

  private async publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.deps.isDraining()) throw new HttpError(503, 'unavailable', 'node is shutting down; publish through another node');
    const body = await readJson(req, this.deps.config.maxHttpBodyBytes);
    const reply = await this.deps.edge.publish('http', this.deps.edge.parsePublish(body));
    sendJson(res, 'user' in reply ? 202 : 200, reply);
  }

  /**
   * Revokes a token (`jti`) until `expiresAt` (its `exp`), or the tokens of a user issued until now; either for
   * `revocationTtlMs` when `expiresAt` is not given. Every node closes the matching connections (4006) within
   * about a second and refuses the tokens at connect and refresh while the revocation holds.
   */
  private async revoke(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = revokeSchema.safeParse(await readJson(req, this.deps.config.maxHttpBodyBytes));
    if (!parsed.success) throw new HttpError(400, 'bad_request', `invalid revoke body: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    const { tenant = 'default', user, jti, expiresAt } = parsed.data;
    const now = Date.now();
    const until = expiresAt ?? now + this.deps.config.revocationTtlMs;
    if (until <= now) throw new HttpError(400, 'bad_request', 'expiresAt is in the past: the token is refused as expired already');
    const r: Revocation = jti !== undefined ? { kind: 'token', tenant, jti, until } : { kind: 'user', tenant, user: user!, before: now, until };
    try {
      await this.deps.revocations.revoke(r);
    } catch (err) {
      throw new HttpError(503, 'unavailable', `the revocation could not be stored: ${(err as Error).message}`);
    }
    sendJson(res, 200, { revoked: r.kind, tenant, ...(jti !== undefined ? { jti } : { user }), until });
  }

  private async history(res: ServerResponse, ref: RoomRef, query: URLSearchParams): Promise<void> {
    // Only the query's syntax is checked here; the bounds are the edge's, as for the protocol's `history`.
    const num = (name: string): number | undefined => {
      const raw = query.get(name);
      if (raw === null) return undefined;
      if (!/^\d{1,16}$/.test(raw)) throw new HttpError(400, 'bad_request', `${name} must be a non-negative integer`);
      return Number(raw);
    };
    const limit = num('limit');
    const before = num('before');
    const after = num('after');
    const page = await this.deps.edge.history(ref, {
      ...(limit !== undefined ? { limit } : {}),
      ...(before !== undefined ? { before } : {}),
      ...(after !== undefined ? { after } : {}),
    });
    sendJson(res, 200, { tenant: ref.tenant, room: ref.room, messages: page.messages.map(toWire), more: page.more });
  }
}
