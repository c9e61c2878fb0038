/**
 * The backend SDK (`@switchboard/backend`): one instance of a named service on NATS.
 *
 *   const svc = await service('orders', { nats: 'nats://127.0.0.1:4222', durable: true });
 *   svc.handle('create', async (msg) => ({ orderId: await createOrder(msg.user, msg.data) }));
 *   await svc.publishToRoom('orders-feed', { created: 1 });
 *
 * Every instance of a service joins NATS queue group `svc.<service>`, so each client `send` or `rpc` is
 * handled by exactly one running instance. Handlers start receiving after the tick of the first
 * `handle()` call, so register all of them together. docs/backend.md has the delivery semantics.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Json } from '../protocol/wire.js';
import { openNats } from '../connections/nats.js';
import { DurableWorker } from './durable.js';
import { ensureConsumer, ensureServiceStream, type QueueLimits } from './streams.js';
import {
  API_PRESENCE,
  API_PUBLISH,
  decodeJson,
  encodeJson,
  isHandlerName,
  isServiceName,
  queueGroup,
  SERVICE_NAME_RULE,
  type ServiceReply,
  type ServiceRequest,
} from './wire.js';

export interface ServiceOptions {
  /** A NATS connection (left open by close()) or server URL(s), comma-separated (closed by close()). */
  nats: NatsConnection | string;
  /** Consume the service's durable queue (sends to services in the gateways' --durable-services). */
  durable?: boolean;
  /** Durable: deliveries of a message before it is dead-lettered (default 5). */
  maxDeliver?: number;
  /** Durable: an unacked message is redelivered after this long (default 30 s; set when the consumer is created). */
  ackWaitMs?: number;
  /** Durable: delay before a failed message is redelivered (default 1 s). */
  redeliveryDelayMs?: number;
  /** Durable: limits of the queue if this instance creates it. */
  queueLimits?: QueueLimits;
  /**
   * Durable: a handler still running after this long counts as failed: the message is redelivered (or
   * dead-lettered at `maxDeliver`) and the slot freed; the handler's late result is ignored (default 5 min).
   */
  handlerTimeoutMs?: number;
  /** Handlers running at once for durable messages (default 64). */
  concurrency?: number;
  /** Timeout of publishToRoom / publishToUser / presence (default 10 s). */
  requestTimeoutMs?: number;
  /** Errors of fire-and-forget handlers and of the connection (default: console.error). */
  onError?: (err: unknown, msg?: ServiceMessage) => void;
}

/**
 * A client's `send` or `rpc` as a handler sees it: the request (kind, topic, tenant, the sending user, its
 * connection and gateway node, idem — dedupe durable messages on (tenant, user, idem) — ts, data) plus:
 */
export interface ServiceMessage extends ServiceRequest {
  /** The handler name, e.g. `create` of `orders.create`. */
  readonly name: string;
  readonly durable: boolean;
  /** Delivery attempt (1 for the first; durable redeliveries count up). */
  readonly deliveries: number;
}

/** Returns the RPC reply (ignored for sends); throwing makes an RPC fail and a durable send be redelivered. */
export type Handler = (msg: ServiceMessage) => Json | void | Promise<Json | void>;

/** A failed publishToRoom / publishToUser / presence, with the stable code of the HTTP API. */
export class BackendError extends Error {
  override readonly name = 'BackendError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PublishOptions {
  tenant?: string;
  /** Sender shown to members (default `server`). */
  from?: string;
  /** Idempotency id: a repeated publish is stored once. */
  idem?: string;
  /** Event name of the room message (1–200 printable ASCII characters, no spaces); members see it as `event`. */
  event?: string;
}

export interface RoomPublishResult {
  tenant: string;
  room: string;
  seq: number;
  epoch: string;
  ts: number;
  duplicate: boolean;
}

export interface PresenceResult {
  tenant: string;
  room: string;
  members: { user: string; online: boolean; connections: number; lastSeen: number }[];
}

export interface Service {
  readonly name: string;
  /** Handles `<service>.<name>` sends and RPCs. */
  handle(name: string, handler: Handler): this;
  /** Resolves once the instance receives messages (after the first `handle()`); rejects if starting failed. */
  ready(): Promise<void>;
  /** Publishes to a room through a gateway: sequenced, stored and fanned out like POST /api/publish. */
  publishToRoom(room: string, data: Json, options?: PublishOptions): Promise<RoomPublishResult>;
  /** A direct message to every live connection of a user (not stored). */
  publishToUser(user: string, data: Json, options?: Omit<PublishOptions, 'idem' | 'event'>): Promise<void>;
  /** Who is in a room, as GET /api/rooms/:room/presence. */
  presence(room: string, options?: { tenant?: string }): Promise<PresenceResult>;
  /** Stops receiving, lets running handlers finish (durable ones ack), then drains the connection. */
  close(): Promise<void>;
}

export async function service(name: string, options: ServiceOptions): Promise<Service> {
  if (!isServiceName(name)) throw new TypeError(`invalid service name ${JSON.stringify(name)}: ${SERVICE_NAME_RULE}`);
  const owned = typeof options.nats === 'string';
  const nc = typeof options.nats === 'string' ? await openNats({ url: options.nats, name: `service ${name}` }) : options.nats;
  try {
    if (options.durable === true) {
      const jsm = await jetstreamManager(nc);
      await ensureServiceStream(jsm, name, options.queueLimits);
      await ensureConsumer(jsm, name, options.ackWaitMs ?? 30_000);
    }
  } catch (err) {
    if (owned) await nc.close();
    throw err;
  }
  return new ServiceInstance(name, nc, owned, options);
}

class ServiceInstance implements Service {
  private readonly handlers = new Map<string, Handler>();
  private sub: Subscription | null = null;
  private worker: DurableWorker | null = null;
  private starting: Promise<void> | null = null;
  private running = 0;
  private idle: (() => void) | null = null;
  private readonly onError: (err: unknown, msg?: ServiceMessage) => void;

  constructor(
    readonly name: string,
    private readonly nc: NatsConnection,
    private readonly owned: boolean,
    private readonly o: ServiceOptions,
  ) {
    this.onError = o.onError ?? ((err) => console.error(`service ${name}:`, err));
  }

  handle(name: string, handler: Handler): this {
    if (!isHandlerName(name)) throw new TypeError(`invalid handler name ${JSON.stringify(name)}`);
    this.handlers.set(name, handler);
    this.starting ??= Promise.resolve().then(() => this.start());
    return this;
  }

  ready(): Promise<void> {
    return this.starting ?? Promise.reject(new Error('register a handler first'));
  }

  private async start(): Promise<void> {
    const prefix = `svc.${this.name}.`;
    this.sub = this.nc.subscribe(`${prefix}>`, {
      queue: queueGroup(this.name),
      callback: (err, msg) => {
        if (err === null) void this.onCore(msg, msg.subject.slice(prefix.length));
      },
    });
    if (this.o.durable === true) {
      this.worker = new DurableWorker(jetstream(this.nc), {
        service: this.name,
        maxDeliver: this.o.maxDeliver ?? 5,
        ackWaitMs: this.o.ackWaitMs ?? 30_000,
        redeliveryDelayMs: this.o.redeliveryDelayMs ?? 1_000,
        concurrency: this.o.concurrency ?? 64,
        handlerTimeoutMs: this.o.handlerTimeoutMs ?? 300_000,
        run: (req, name, deliveries) => this.run(req, name, true, deliveries),
        onError: (err) => this.onError(err),
      });
      await this.worker.start();
    }
    await this.nc.flush();
  }

  private async run(req: ServiceRequest, name: string, durable: boolean, deliveries: number): Promise<Json | void> {
    const handler = this.handlers.get(name);
    if (handler === undefined) throw new Error(`service ${this.name} has no handler ${name}`);
    this.running++;
    try {
      return await handler({ ...req, name, durable, deliveries });
    } finally {
      if (--this.running === 0) this.idle?.();
    }
  }

  /** A core NATS request: a send is answered "received" first, an RPC with the handler's outcome. */
  private async onCore(msg: Msg, name: string): Promise<void> {
    let req: ServiceRequest;
    try {
      req = decodeJson<ServiceRequest>(msg.data);
    } catch (err) {
      this.onError(err);
      return;
    }
    const reply = (r: ServiceReply): void => {
      if (msg.reply) msg.respond(encodeJson(r));
    };
    if (!this.handlers.has(name)) return reply({ ok: false, error: `service ${this.name} has no handler ${name}` });
    if (req.kind === 'send') {
      reply({ ok: true });
      await this.run(req, name, false, 1).catch((err: unknown) => this.onError(err, { ...req, name, durable: false, deliveries: 1 }));
      return;
    }
    try {
      const data = await this.run(req, name, false, 1);
      reply(data === undefined ? { ok: true } : { ok: true, data });
    } catch (err) {
      reply({ ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private async api<T>(subject: string, body: Record<string, unknown>): Promise<T> {
    let raw;
    try {
      raw = await this.nc.request(subject, encodeJson(body), { timeout: this.o.requestTimeoutMs ?? 10_000 });
    } catch (err) {
      throw new BackendError('unavailable', `no gateway answered ${subject}: ${(err as Error).message}`);
    }
    const r = decodeJson<{ ok: true; result: T } | { ok: false; code: string; message: string }>(raw.data);
    if (!r.ok) throw new BackendError(r.code, r.message);
    return r.result;
  }

  publishToRoom(room: string, data: Json, options: PublishOptions = {}): Promise<RoomPublishResult> {
    return this.api(API_PUBLISH, { ...options, room, data });
  }

  async publishToUser(user: string, data: Json, options: Omit<PublishOptions, 'idem' | 'event'> = {}): Promise<void> {
    await this.api(API_PUBLISH, { ...options, user, data });
  }

  presence(room: string, options: { tenant?: string } = {}): Promise<PresenceResult> {
    return this.api(API_PRESENCE, { ...options, room });
  }

  async close(): Promise<void> {
    await this.starting?.catch(() => undefined);
    // Drain, not unsubscribe: requests already routed to this instance are still answered.
    await this.sub?.drain();
    await this.worker?.stop();
    if (this.running > 0) await new Promise<void>((r) => (this.idle = r));
    if (this.owned) await this.nc.drain().catch(() => this.nc.close());
    else await this.nc.flush().catch(() => undefined);
  }
}
