/**
 * JetStreamWebhookQueue: the cluster WebhookQueue, a JetStream work-queue stream (`SWITCHBOARD_HOOKS`, subjects
 * `sb.h.<tenant>`) read by one durable pull consumer (`webhook-sender`) that every node's sender shares.
 *
 * - `push` publishes each event with `Nats-Msg-Id` = its id (a retry within the duplicate window is stored once)
 *   and resolves on the stream's acks.
 * - Work-queue retention: an event is deleted from the stream when acked. Handed-out events are kept "in progress"
 *   (`working()` every quarter of the ack wait) while their consumer lives, so a long retry is not redelivered
 *   elsewhere; a killed node's events come back after the ack wait (default 10 s). `retry(delay)` is a NAK with
 *   that delay; `stop` NAKs what is held, so another node takes it at once.
 */
import {
  jetstream,
  jetstreamManager,
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { EngineError } from '../errors.js';
import {
  defaultWebhookConsumeOptions,
  type WebhookConsumeOptions,
  type WebhookConsumer,
  type WebhookDelivery,
  type WebhookEvent,
  type WebhookQueue,
} from './queue.js';

export interface JetStreamWebhookQueueOptions {
  /** Default `SWITCHBOARD_HOOKS`. */
  stream: string;
  /** The stream captures `<prefix>.>` (default `sb.h`). */
  subjectPrefix: string;
  /** Default `webhook-sender`. */
  consumer: string;
  /** Stream replicas (default 1; 3 in production). */
  replicas: number;
  /** An event not acked for this long is dropped from the stream, ms (default 1 day). */
  maxAgeMs: number;
  /** A handed-out event neither acked nor kept in progress for this long goes to another consumer, ms (default 10 s). */
  ackWaitMs: number;
  /** `push` rejects without the stream's acks within this long, ms (default 10 s). */
  publishTimeoutMs: number;
  /** `close()` also closes the connection. */
  closeConnection?: boolean;
  /** Told when the consumer cannot attach (retried). */
  onError?: (err: unknown) => void;
}

export const defaultJetStreamWebhookQueueOptions: JetStreamWebhookQueueOptions = {
  stream: 'SWITCHBOARD_HOOKS',
  subjectPrefix: 'sb.h',
  consumer: 'webhook-sender',
  replicas: 1,
  maxAgeMs: 86_400_000,
  ackWaitMs: 10_000,
  publishTimeoutMs: 10_000,
};

/** Creates or updates the stream and its consumer. */
export async function openJetStreamWebhookQueue(nc: NatsConnection, options: Partial<JetStreamWebhookQueueOptions> = {}): Promise<JetStreamWebhookQueue> {
  const o = { ...defaultJetStreamWebhookQueueOptions, ...options };
  const jsm = await jetstreamManager(nc, { timeout: o.publishTimeoutMs });
  const config = {
    name: o.stream,
    subjects: [`${o.subjectPrefix}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: o.replicas,
    max_age: nanos(o.maxAgeMs),
    duplicate_window: nanos(Math.min(120_000, o.maxAgeMs)),
  };
  try {
    await jsm.streams.info(o.stream);
    await jsm.streams.update(o.stream, config);
  } catch (err) {
    if (!isNotFound(err))
      throw new EngineError('webhookqueue', 'invalid', `jetstream: cannot update stream ${o.stream}: ${(err as Error).message}`, { cause: err });
    await jsm.streams.add(config);
  }
  try {
    await jsm.consumers.info(o.stream, o.consumer);
    await jsm.consumers.update(o.stream, o.consumer, { ack_wait: nanos(o.ackWaitMs) });
  } catch (err) {
    if (!isNotFound(err))
      throw new EngineError('webhookqueue', 'invalid', `jetstream: cannot update consumer ${o.consumer}: ${(err as Error).message}`, { cause: err });
    await jsm.consumers.add(o.stream, {
      durable_name: o.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(o.ackWaitMs),
      max_deliver: -1,
      max_ack_pending: 100_000,
    });
  }
  return new JetStreamWebhookQueue(nc, jsm, jetstream(nc, { timeout: o.publishTimeoutMs }), o);
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

export class JetStreamWebhookQueue implements WebhookQueue {
  readonly kind = 'jetstream';
  private closed = false;
  private depthValue = 0;
  private pollError: string | undefined;
  private readonly poll: NodeJS.Timeout;
  private readonly consumers = new Set<JetStreamConsumer>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly options: JetStreamWebhookQueueOptions,
  ) {
    this.poll = setInterval(() => void this.pollDepth(), 1_000);
    this.poll.unref();
  }

  async push(events: readonly WebhookEvent[]): Promise<void> {
    if (this.closed) throw new EngineError('webhookqueue', 'closed', 'webhook queue is closed');
    try {
      await Promise.all(
        events.map((e) =>
          this.js.publish(`${this.options.subjectPrefix}.${e.tenant}`, JSON.stringify(e), { msgID: e.id, timeout: this.options.publishTimeoutMs }),
        ),
      );
    } catch (err) {
      throw new EngineError('webhookqueue', 'unavailable', `jetstream did not store webhook events: ${(err as Error).message}`, { cause: err });
    }
  }

  consume(handler: (delivery: WebhookDelivery) => void, options: Partial<WebhookConsumeOptions> = {}): WebhookConsumer {
    if (this.closed) throw new EngineError('webhookqueue', 'closed', 'webhook queue is closed');
    const c = new JetStreamConsumer(this.js, this.options, handler, { ...defaultWebhookConsumeOptions, ...options }, () => this.consumers.delete(c));
    this.consumers.add(c);
    return c;
  }

  depth(): number {
    return this.depthValue;
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'closed' };
    if (this.nc.isClosed()) return { ok: false, detail: 'nats closed' };
    return this.pollError === undefined ? { ok: true } : { ok: false, detail: this.pollError };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    await Promise.all([...this.consumers].map((c) => c.stop()));
    if (this.options.closeConnection === true) await this.nc.close().catch(() => undefined);
  }

  private async pollDepth(): Promise<void> {
    if (this.closed || this.nc.isClosed()) return;
    try {
      const info = await this.jsm.streams.info(this.options.stream);
      this.depthValue = info.state.messages;
      this.pollError = undefined;
    } catch (err) {
      this.pollError = `jetstream stream info failed: ${(err as Error).message}`;
    }
  }
}

/** One `consume` call: a pull subscription bounded by maxInFlight, keeping what it holds in progress. */
class JetStreamConsumer implements WebhookConsumer {
  private stopped = false;
  private messages: ConsumerMessages | undefined;
  /** Held deliveries → when last delivered or marked in progress. */
  private readonly held = new Map<JsMsg, number>();
  private readonly keepAlive: NodeJS.Timeout;
  private readonly done: Promise<void>;

  constructor(
    private readonly js: JetStreamClient,
    private readonly o: JetStreamWebhookQueueOptions,
    private readonly handler: (delivery: WebhookDelivery) => void,
    private readonly options: WebhookConsumeOptions,
    private readonly onStopped: () => void,
  ) {
    const period = Math.max(100, Math.floor(o.ackWaitMs / 4));
    this.keepAlive = setInterval(() => {
      const now = Date.now();
      for (const [m, at] of this.held) {
        if (now - at < period) continue;
        m.working();
        this.held.set(m, now);
      }
    }, period);
    this.keepAlive.unref();
    this.done = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.done;
  }

  private async run(): Promise<void> {
    let delay = 200;
    while (!this.stopped) {
      try {
        const consumer = await this.js.consumers.get(this.o.stream, this.o.consumer);
        if (this.stopped) break;
        // A pull of at most the free room: what is held plus what is pulled stays within maxInFlight.
        const messages = await consumer.consume({ max_messages: this.options.maxInFlight, expires: 2_000 });
        this.messages = messages;
        delay = 200;
        for await (const m of messages) {
          if (this.stopped) {
            m.nak();
            continue;
          }
          this.take(m);
          while (!this.stopped && this.held.size >= this.options.maxInFlight) await new Promise((r) => setTimeout(r, 20));
        }
      } catch (err) {
        if (this.stopped) break;
        this.o.onError?.(err);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
    clearInterval(this.keepAlive);
    for (const m of this.held.keys()) m.nak();
    this.held.clear();
    this.onStopped();
  }

  private take(m: JsMsg): void {
    let event: WebhookEvent;
    try {
      event = m.json<WebhookEvent>();
    } catch (err) {
      this.o.onError?.(err);
      m.term();
      return;
    }
    this.held.set(m, Date.now());
    const end = (f: () => void): void => {
      if (!this.held.delete(m)) return;
      f();
    };
    this.handler({
      event,
      redelivered: m.info.deliveryCount - 1,
      ack: () => end(() => m.ack()),
      retry: (ms) => end(() => m.nak(Math.max(0, ms))),
    });
  }
}
