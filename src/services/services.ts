/**
 * Client → backend services (docs/backend.md). A `send` or `rpc` frame becomes a NATS message to the
 * service's queue group, so exactly one running instance handles it:
 * - fire-and-forget `send` (core NATS): a request on `svc.<service>.<name>`; the instance's SDK answers
 *   "received" before running the handler, so the client's `sent` means an instance has it, and NATS's
 *   no-responders status means no instance is running (`no_service`).
 * - durable `send` (services listed in --durable-services): a JetStream publish to the service's
 *   work-queue stream, deduplicated on (tenant, user, idem); `sent` means stored. It waits there until an
 *   instance consumes and acks it, bounded by the stream's limits (a full queue answers `unavailable`).
 * - `rpc`: a request on the same subject; the instance answers with the handler's result or error.
 * Without --nats (embedded mode) every send and rpc answers `services_disabled`.
 */
import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Identity } from '../auth/identity.js';
import { coreSubject, decodeJson, durableSubject, encodeJson, parseTopic, TOPIC_RULE, type ServiceReply, type ServiceRequest } from '../backend/wire.js';
import type { Json } from '../engines/types.js';
import { SwitchboardError } from '../protocol/errors.js';
import { isIdemId } from '../protocol/names.js';

export interface ServicesOptions {
  readonly nodeId: string;
  /** Services whose sends go to their durable JetStream queue. */
  readonly durable: readonly string[];
  /** RPC timeout when the frame gives none, and the largest one a frame may ask for (ms). */
  readonly rpcTimeoutMs: number;
  readonly rpcMaxTimeoutMs: number;
  /** How long a fire-and-forget send waits for an instance's receipt, or a durable one for the stream. */
  readonly sendTimeoutMs: number;
  readonly queueMaxMsgs: number;
}

export interface SendOutcome {
  readonly idem: string;
  readonly durable: boolean;
  readonly duplicate: boolean;
}

export class Services {
  private readonly js: JetStreamClient | null;
  private readonly durable: Set<string>;

  private constructor(
    private readonly nc: NatsConnection | null,
    private readonly o: ServicesOptions,
    js: JetStreamClient | null,
  ) {
    this.js = js;
    this.durable = new Set(o.durable);
  }

  /** Embedded mode: every request answers `services_disabled`. */
  static disabled(o: ServicesOptions): Services {
    return new Services(null, o, null);
  }

  /** Over a node's NATS connection; creates the queues of durable services (needs JetStream). */
  static async open(nc: NatsConnection, o: ServicesOptions): Promise<Services> {
    // Imported here: an embedded node (Services.disabled) never loads the NATS client.
    const [{ jetstream, jetstreamManager }, { ensureServiceStream }] = await Promise.all([import('@nats-io/jetstream'), import('../backend/streams.js')]);
    if (o.durable.length > 0) {
      const jsm = await jetstreamManager(nc).catch((err: unknown) => {
        throw new Error(`--durable-services needs JetStream on the NATS server (nats-server -js): ${(err as Error).message}`, { cause: err });
      });
      for (const s of o.durable) await ensureServiceStream(jsm, s, { maxMsgs: o.queueMaxMsgs });
    }
    return new Services(nc, o, o.durable.length > 0 ? jetstream(nc) : null);
  }

  isDurable(service: string): boolean {
    return this.durable.has(service);
  }

  /** Hands a client `send` to one instance (core) or to the durable queue; throws SwitchboardError. */
  async send(id: Identity, conn: string, topic: string, data: Json, idem: string | undefined): Promise<SendOutcome> {
    const { service, name, nc } = this.check(id, topic, 'send');
    if (idem !== undefined && !isIdemId(idem)) throw new SwitchboardError('bad_request', 'idem: 1–128 printable ASCII characters');
    const req = this.request('send', id, conn, topic, data, idem ?? randomUUID());
    if (this.js !== null && this.durable.has(service)) {
      let ack;
      try {
        ack = await this.js.publish(durableSubject(service, name), encodeJson(req), {
          msgID: `${id.tenant}/${id.user}/${req.idem}`,
          timeout: this.o.sendTimeoutMs,
        });
      } catch (err) {
        const full = /maximum (messages|bytes)/i.test((err as Error).message);
        // Without a client idem the retry cannot be matched to this attempt (which may have been stored).
        const retry = idem !== undefined ? 'retry with the same idem' : 'retry; send with an idem so a retry is queued once';
        throw new SwitchboardError(
          'unavailable',
          full ? `the queue of service ${service} is full; ${retry} later` : `the queue of service ${service} is unavailable; ${retry}`,
          { cause: err },
        );
      }
      return { idem: req.idem, durable: true, duplicate: ack.duplicate };
    }
    await this.call(nc, service, name, req, this.o.sendTimeoutMs, 'send');
    return { idem: req.idem, durable: false, duplicate: false };
  }

  /** One instance's answer to a client `rpc`; throws SwitchboardError (no_service, rpc_timeout, service_error). */
  async rpc(id: Identity, conn: string, topic: string, data: Json, timeoutMs: number | undefined): Promise<Json> {
    const { service, name, nc } = this.check(id, topic, 'rpc');
    if (timeoutMs !== undefined && (timeoutMs < 1 || timeoutMs > this.o.rpcMaxTimeoutMs)) {
      throw new SwitchboardError('bad_request', `timeoutMs must be between 1 and ${this.o.rpcMaxTimeoutMs}`);
    }
    const reply = await this.call(nc, service, name, this.request('rpc', id, conn, topic, data, randomUUID()), timeoutMs ?? this.o.rpcTimeoutMs, 'rpc');
    return reply.ok && reply.data !== undefined ? reply.data : null;
  }

  private check(id: Identity, topic: string, kind: 'send' | 'rpc'): { service: string; name: string; nc: NatsConnection } {
    if (this.nc === null)
      throw new SwitchboardError('services_disabled', 'this node runs without NATS (embedded mode); backend services need nodes started with --nats');
    const parsed = parseTopic(topic);
    if (parsed === null) throw new SwitchboardError('bad_topic', `invalid topic: ${TOPIC_RULE}`);
    if (!(kind === 'send' ? id.canSend(topic) : id.canCall(topic))) {
      throw new SwitchboardError('forbidden', `the token does not allow ${kind} to ${topic}`);
    }
    return { ...parsed, nc: this.nc };
  }

  private request(kind: 'send' | 'rpc', id: Identity, conn: string, topic: string, data: Json, idem: string): ServiceRequest {
    return { kind, topic, tenant: id.tenant, user: id.user, conn, node: this.o.nodeId, idem, ts: Date.now(), data };
  }

  private async call(nc: NatsConnection, service: string, name: string, req: ServiceRequest, timeoutMs: number, kind: 'send' | 'rpc'): Promise<ServiceReply> {
    let reply: ServiceReply;
    try {
      const msg = await nc.request(coreSubject(service, name), encodeJson(req), { timeout: timeoutMs });
      reply = decodeJson<ServiceReply>(msg.data);
    } catch (err) {
      if (isNoResponders(err)) throw new SwitchboardError('no_service', `no instance of service ${service} is running`, { cause: err });
      if (isTimeout(err)) {
        if (kind === 'rpc') throw new SwitchboardError('rpc_timeout', `service ${service} did not answer within ${timeoutMs} ms`, { cause: err });
        throw new SwitchboardError('unavailable', `no instance of service ${service} confirmed receipt within ${timeoutMs} ms; retry with the same idem`, {
          cause: err,
        });
      }
      throw new SwitchboardError('unavailable', 'NATS is unavailable; retry', { cause: err });
    }
    if (!reply.ok) throw new SwitchboardError('service_error', `service ${service} failed: ${String(reply.error).slice(0, 1000)}`);
    return reply;
  }
}

function chain(err: unknown): Error[] {
  const out: Error[] = [];
  let e: unknown = err;
  while (e instanceof Error && out.length < 5) {
    out.push(e);
    e = e.cause;
  }
  return out;
}

function isNoResponders(err: unknown): boolean {
  return chain(err).some((e) => {
    const probe = (e as Error & { isNoResponders?: () => boolean }).isNoResponders;
    return e.name === 'NoRespondersError' || (typeof probe === 'function' && probe.call(e));
  });
}

function isTimeout(err: unknown): boolean {
  return chain(err).some((e) => e.name === 'TimeoutError' || /timeout/i.test(e.message));
}
