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
import { API_PRESENCE, API_PUBLISH, API_QUEUE, decodeJson, encodeJson } from '../backend/wire.js';
import type { Edge } from '../messaging/edge.js';
import type { Logger } from '../observability/logger.js';
import { SwitchboardError } from '../protocol/errors.js';

export class BackendApi {
  private readonly subs: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly edge: Edge,
    private readonly log: Logger,
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
      reply = { ok: true, result: await fn(body) };
    } catch (err) {
      const e = this.edge.refused(err, { subject: msg.subject });
      reply = { ok: false, code: e.code, message: e.message };
    }
    if (!msg.reply) return;
    try {
      msg.respond(encodeJson(reply));
    } catch (err) {
      // The connection is draining or closed (node stopping): the caller's request times out.
      this.log.warn({ err }, 'backend API reply not sent');
    }
  }

  private async publish(body: unknown): Promise<unknown> {
    return this.edge.publish('nats', this.edge.parsePublish(body));
  }

  private async presence(body: unknown): Promise<unknown> {
    const ref = this.edge.parseRoom(body);
    return { room: ref.room, tenant: ref.tenant, members: await this.edge.presence(ref) };
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
