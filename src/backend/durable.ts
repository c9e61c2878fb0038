/**
 * The durable half of a service instance: reads the service's work queue through the shared pull
 * consumer (one instance gets each message), runs the handler, and acks only after it resolved.
 * A handler that throws is redelivered (nak with a delay) until delivery `maxDeliver`, then the message
 * is dead-lettered with the error on `sbdlq.<service>.<name>` and acked. A message delivered more than
 * `maxDeliver` times without an answer (its instances kept dying) is dead-lettered without running it.
 * From the moment a message is pulled (also while it waits for one of the `concurrency` handler slots)
 * until it is acked, its ack deadline is extended (`working`), so slow handlers are not redelivered to
 * a second instance.
 */
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { withTimeout } from '../util/timeout.js';
import { DURABLE_CONSUMER, deadLetterSubject, decodeJson, encodeJson, streamName, type DeadLetter, type ServiceRequest } from './wire.js';

export interface DurableRunOptions {
  readonly service: string;
  readonly maxDeliver: number;
  readonly ackWaitMs: number;
  readonly redeliveryDelayMs: number;
  readonly concurrency: number;
  /** A handler still running after this long counts as failed (redelivered, or dead-lettered at maxDeliver). */
  readonly handlerTimeoutMs: number;
  /** Runs the handler for a request; rejects with the handler's error. */
  readonly run: (req: ServiceRequest, name: string, deliveries: number) => Promise<unknown>;
  readonly onError: (err: unknown) => void;
}

export class DurableWorker {
  private messages: ConsumerMessages | null = null;
  private inflight = 0;
  private idle: (() => void) | null = null;
  /** Pulled and not yet acked/nakked: kept "in progress" so the server does not hand them to another instance. */
  private readonly held = new Set<JsMsg>();
  /** Pulled and waiting for a free handler slot. */
  private readonly queue: JsMsg[] = [];
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(
    private readonly js: JetStreamClient,
    private readonly o: DurableRunOptions,
  ) {}

  async start(): Promise<void> {
    const consumer = await this.js.consumers.get(streamName(this.o.service), DURABLE_CONSUMER);
    this.keepAlive = setInterval(
      () => {
        for (const m of this.held) m.working();
      },
      Math.max(100, this.o.ackWaitMs / 3),
    );
    this.keepAlive.unref();
    this.messages = await consumer.consume({
      max_messages: this.o.concurrency,
      callback: (m) => {
        this.held.add(m);
        this.queue.push(m);
        this.pump();
      },
    });
    void this.messages.closed().then((err) => {
      if (err) this.o.onError(err);
    });
  }

  /** Starts queued messages while fewer than `concurrency` handlers run. */
  private pump(): void {
    while (this.inflight < this.o.concurrency && this.queue.length > 0) {
      const m = this.queue.shift()!;
      this.inflight++;
      void this.process(m)
        .catch((err: unknown) => this.o.onError(err))
        .finally(() => {
          this.held.delete(m);
          this.inflight--;
          this.pump();
          if (this.inflight === 0) this.idle?.();
        });
    }
  }

  private async process(m: JsMsg): Promise<void> {
    const name = m.subject.slice(`sbq.${this.o.service}.`.length);
    const deliveries = m.info.deliveryCount;
    let req: ServiceRequest;
    try {
      req = decodeJson<ServiceRequest>(m.data);
    } catch (err) {
      m.term('not JSON');
      this.o.onError(err);
      return;
    }
    if (deliveries > this.o.maxDeliver) {
      await this.deadLetter(m, { request: req, error: `delivered ${deliveries - 1} times without an answer`, deliveries: deliveries - 1 }, name);
      return;
    }
    try {
      // A handler that never settles must not hold its message (and a slot) for ever while the keep-alive
      // extends its ack deadline; its late result is ignored and the message is redelivered (at least once).
      const ms = this.o.handlerTimeoutMs;
      await withTimeout(this.o.run(req, name, deliveries), ms, `handler did not finish within ${ms} ms`);
      await m.ackAck().catch((err: unknown) => this.o.onError(err));
    } catch (err) {
      if (deliveries >= this.o.maxDeliver) {
        await this.deadLetter(m, { request: req, error: err instanceof Error ? err.message : String(err), deliveries }, name);
      } else {
        m.nak(this.o.redeliveryDelayMs);
      }
    }
  }

  private async deadLetter(m: JsMsg, letter: DeadLetter, name: string): Promise<void> {
    try {
      await this.js.publish(deadLetterSubject(this.o.service, name), encodeJson(letter), { msgID: `${this.o.service}/${m.info.streamSequence}` });
      await m.ackAck();
    } catch (err) {
      // Not acked: it comes back and is dead-lettered again (deduplicated by the stream sequence).
      this.o.onError(err);
    }
  }

  /**
   * Stops taking messages, gives the ones still waiting for a slot back at once (nak: another instance
   * gets them now, not after the ack wait) and waits for running handlers (their acks are sent).
   */
  async stop(): Promise<void> {
    await this.messages?.close();
    for (const m of this.queue.splice(0)) {
      this.held.delete(m);
      m.nak();
    }
    if (this.inflight > 0) await new Promise<void>((r) => (this.idle = r));
    if (this.keepAlive !== null) clearInterval(this.keepAlive);
  }
}
