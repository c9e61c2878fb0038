/**
 * The server API on NATS, for the backend SDK: every gateway serves `sb.api.publish` and
 * `sb.api.presence` in queue group `sb.api`, so one node handles each request exactly as it would
 * POST /api/publish or GET /api/rooms/:room/presence (same validation, same publish path: sequenced,
 * durable, fanned out), and answers with the same JSON body. Whoever may publish on these NATS subjects
 * may use the API: NATS credentials play the role of the HTTP API key.
 *
 * Reply: `{ ok: true, result: <HTTP body> }` or `{ ok: false, code, message }` with the stable error codes.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import { API_PRESENCE, API_PUBLISH, API_QUEUE, decodeJson, encodeJson } from '../backend/wire.js';
import { publishSchema } from '../http/api.js';
import { exceedsDepth, MAX_JSON_DEPTH } from '../protocol/json-depth.js';
import { isRoomName, isTenantName, ROOM_NAME_RULE, TENANT_NAME_RULE } from '../protocol/names.js';
import { SwitchboardError, type ErrorCode } from '../protocol/errors.js';
import type { NodeContext } from '../gateway/context.js';

const presenceSchema = z
  .object({
    tenant: z.string().refine(isTenantName, TENANT_NAME_RULE).default('default'),
    room: z.string().refine(isRoomName, ROOM_NAME_RULE),
  })
  .strict();

export class BackendApi {
  private readonly subs: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly ctx: NodeContext,
    private readonly nc: NatsConnection,
  ) {}

  /** Subscribes both subjects; resolves once the server has the interest. */
  async start(): Promise<void> {
    const serve = (subject: string, fn: (body: unknown) => Promise<unknown>): void => {
      this.subs.push(
        this.nc.subscribe(subject, {
          queue: API_QUEUE,
          callback: (err, msg) => {
            if (err !== null) return;
            const p = this.answer(msg, fn).finally(() => this.inFlight.delete(p));
            this.inFlight.add(p);
          },
        }),
      );
    };
    serve(API_PUBLISH, (b) => this.publish(b));
    serve(API_PRESENCE, (b) => this.presence(b));
    await this.nc.flush();
  }

  private async answer(msg: Msg, fn: (body: unknown) => Promise<unknown>): Promise<void> {
    let reply: unknown;
    try {
      let body: unknown;
      try {
        body = decodeJson(msg.data);
      } catch {
        throw new SwitchboardError('bad_json', 'request is not valid JSON');
      }
      if (exceedsDepth(body, MAX_JSON_DEPTH)) throw new SwitchboardError('bad_request', `body nests deeper than ${MAX_JSON_DEPTH} levels`);
      reply = { ok: true, result: await fn(body) };
    } catch (err) {
      const code: ErrorCode = err instanceof SwitchboardError ? err.code : 'internal';
      if (!(err instanceof SwitchboardError)) this.ctx.log.error({ err }, 'backend API request failed');
      this.ctx.metrics.error(code);
      reply = { ok: false, code, message: err instanceof SwitchboardError ? err.message : 'internal error' };
    }
    if (!msg.reply) return;
    try {
      msg.respond(encodeJson(reply));
    } catch (err) {
      // The connection is draining or closed (node stopping): the caller's request times out.
      this.ctx.log.warn({ err }, 'backend API reply not sent');
    }
  }

  private async publish(body: unknown): Promise<unknown> {
    const parsed = publishSchema.safeParse(body);
    if (!parsed.success) throw badRequest(parsed.error);
    const b = parsed.data;
    if (b.user !== undefined) {
      await this.ctx.publisher.toUser(b.tenant, b.user, b.from, b.data);
      return { tenant: b.tenant, user: b.user, status: 'sent' };
    }
    const ref = { tenant: b.tenant, room: b.room! };
    const { message, duplicate } = await this.ctx.publisher.toRoom(ref, { from: b.from, data: b.data, ...(b.idem !== undefined ? { idem: b.idem } : {}) });
    if (duplicate) this.ctx.metrics.duplicates.inc();
    else this.ctx.metrics.published.inc({ source: 'nats' });
    return { tenant: ref.tenant, room: ref.room, seq: message.seq, epoch: message.epoch, ts: message.ts, duplicate };
  }

  private async presence(body: unknown): Promise<unknown> {
    const parsed = presenceSchema.safeParse(body);
    if (!parsed.success) throw badRequest(parsed.error);
    const ref = parsed.data;
    try {
      return { room: ref.room, tenant: ref.tenant, members: await this.ctx.engines.presence.members(ref) };
    } catch (err) {
      throw new SwitchboardError('unavailable', 'presence is unavailable', { cause: err });
    }
  }

  /**
   * Stops serving (other nodes of the queue group take over), then waits (at most `waitMs`) for the
   * requests already being handled to be answered, so their replies go out before the connection drains.
   */
  async close(waitMs = 15_000): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, waitMs);
    });
    await Promise.race([Promise.allSettled([...this.inFlight]), timeout]);
    clearTimeout(timer);
  }
}

function badRequest(error: z.ZodError): SwitchboardError {
  const issue = error.issues[0];
  return new SwitchboardError('bad_request', issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body');
}
