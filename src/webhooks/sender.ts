/**
 * The webhook sender of one node: takes events from the WebhookQueue (shared by the cluster), batches them per
 * target (URL), signs and POSTs each batch, retries with backoff until the retry deadline, then dead-letters.
 *
 * - A target's events go in queue order, one request in flight per target (so a target sees them in order, except
 *   for events redelivered after a node died), at most `concurrency` requests per node.
 * - A batch is sent when it holds `batchSize` events or `batchMs` after its first one arrived.
 * - A failed request (no 2xx within `timeoutMs`) is sent again (same events, new signature time) after 0.5 s, 1 s,
 *   2 s … up to 30 s (±20 % jitter), while before `retryDeadlineMs` after its oldest event was decided; after that its
 *   events are dead-lettered: counted (`switchboard_webhook_dead_letters_total`), logged with their ids, dropped.
 * - An event is acked in the queue only once every target that receives it has it (delivered or dead-lettered); a
 *   node that dies first leaves it to another node (at least once: receivers dedupe by event id).
 * - A target's backlog is bounded (10 batches); beyond it events are given back to the queue for a while, so one
 *   failing receiver does not fill the node's share of the queue and hold up the others.
 */
import type { WebhookDelivery, WebhookEvent, WebhookQueue, WebhookConsumer } from '../engines/webhookqueue/queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { webhookRequest } from './format.js';
import type { WebhookTargets, WebhookTargetSpec } from './targets.js';

export interface WebhookSenderOptions {
  readonly batchSize: number;
  readonly batchMs: number;
  readonly timeoutMs: number;
  readonly retryDeadlineMs: number;
  readonly concurrency: number;
}

export interface WebhookSenderDeps {
  /** Sent as `X-Switchboard-Node` (which node sent a request, for the receiver's logs). */
  readonly nodeId: string;
  readonly queue: WebhookQueue;
  readonly targets: WebhookTargets;
  readonly metrics: Pick<Metrics, 'webhookRequests' | 'webhookDelivered' | 'webhookDeadLetters' | 'webhookLatency' | 'webhookQueueDepth'>;
  readonly log: Logger;
  readonly options: WebhookSenderOptions;
}

/** One queued delivery and the targets that still have to get it. */
interface Pending {
  readonly delivery: WebhookDelivery;
  left: number;
}

interface Lane {
  readonly target: WebhookTargetSpec;
  readonly waiting: Pending[];
  busy: boolean;
  timer: NodeJS.Timeout | null;
}

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;
/** Batches a target may have waiting before its events are given back to the queue. */
const LANE_BATCHES = 10;
/** How long events given back for a full lane stay in the queue, ms. */
const GIVE_BACK_MS = 2_000;

export class WebhookSender {
  private consumer: WebhookConsumer | null = null;
  private readonly lanes = new Map<string, Lane>();
  private active = 0;
  private stopped = false;
  private readonly sleeping = new Set<NodeJS.Timeout>();
  private depthTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: WebhookSenderDeps) {}

  start(): void {
    if (this.consumer !== null) return;
    const { batchSize, concurrency } = this.deps.options;
    this.consumer = this.deps.queue.consume((d) => this.take(d), { maxInFlight: Math.max(100, batchSize * concurrency * 2) });
    this.depthTimer = setInterval(() => this.deps.metrics.webhookQueueDepth.set(this.deps.queue.depth()), 1_000);
    this.depthTimer.unref();
  }

  /** Stops taking events; what is held goes back to the queue (another node sends it). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.depthTimer !== null) clearInterval(this.depthTimer);
    for (const t of this.sleeping) clearTimeout(t);
    for (const lane of this.lanes.values()) if (lane.timer !== null) clearTimeout(lane.timer);
    await this.consumer?.stop();
  }

  private take(delivery: WebhookDelivery): void {
    const e = delivery.event;
    const targets = this.deps.targets.receivers(e.tenant, e.room, e.name);
    if (targets.length === 0) {
      delivery.ack(); // configuration changed since it was queued: nobody wants it
      return;
    }
    const pending: Pending = { delivery, left: targets.length };
    const { batchSize, batchMs } = this.deps.options;
    for (const target of targets) {
      let lane = this.lanes.get(target.id);
      if (lane === undefined) {
        lane = { target, waiting: [], busy: false, timer: null };
        this.lanes.set(target.id, lane);
      }
      if (lane.waiting.length >= batchSize * LANE_BATCHES && pending.left === targets.length) {
        // A slow or failing receiver: leave its events in the queue for a while instead of holding them all here.
        delivery.retry(GIVE_BACK_MS);
        return;
      }
      lane.waiting.push(pending);
      if (lane.waiting.length >= batchSize) this.flush(lane);
      else if (lane.timer === null && !lane.busy) {
        const l = lane;
        lane.timer = setTimeout(() => {
          l.timer = null;
          this.flush(l);
        }, batchMs);
        lane.timer.unref();
      }
    }
  }

  private flush(lane: Lane): void {
    if (this.stopped || lane.busy || lane.waiting.length === 0) return;
    if (this.active >= this.deps.options.concurrency) return; // picked up when a request ends
    if (lane.timer !== null) {
      clearTimeout(lane.timer);
      lane.timer = null;
    }
    const batch = lane.waiting.splice(0, this.deps.options.batchSize);
    lane.busy = true;
    this.active++;
    void this.send(lane.target, batch).finally(() => {
      lane.busy = false;
      this.active--;
      if (this.stopped) return;
      this.flush(lane);
      for (const other of this.lanes.values()) {
        if (this.active >= this.deps.options.concurrency) break;
        if (!other.busy && other.timer === null && other.waiting.length > 0) this.flush(other);
      }
    });
  }

  /** Sends one batch until delivered, dead-lettered, or the sender stops (then the events go back to the queue). */
  private async send(target: WebhookTargetSpec, batch: Pending[]): Promise<void> {
    const events = batch.map((p) => p.delivery.event);
    const deadline = Math.min(...events.map((e) => e.ts)) + this.deps.options.retryDeadlineMs;
    let delay = FIRST_RETRY_MS;
    for (;;) {
      if (this.stopped) return;
      const error = await this.post(target, events);
      if (error === null) {
        const now = Date.now();
        this.deps.metrics.webhookDelivered.inc(events.length);
        for (const e of events) this.deps.metrics.webhookLatency.observe(Math.max(0, now - e.ts) / 1000);
        this.done(batch);
        return;
      }
      const wait = delay * (0.8 + Math.random() * 0.4);
      if (Date.now() + wait > deadline) {
        this.deps.metrics.webhookDeadLetters.inc(events.length);
        this.deps.log.warn(
          { url: target.url, tenant: target.tenant, ids: events.map((e) => e.id), error },
          'webhook events dead-lettered after the retry deadline',
        );
        this.done(batch);
        return;
      }
      this.deps.log.debug({ url: target.url, error, retryMs: Math.round(wait) }, 'webhook request failed; retrying');
      await this.sleep(wait);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  /** One POST; null when answered 2xx, else what went wrong. */
  private async post(target: WebhookTargetSpec, events: WebhookEvent[]): Promise<string | null> {
    const req = webhookRequest(target, events, Date.now());
    try {
      const headers = { ...req.headers, 'x-switchboard-node': this.deps.nodeId };
      const res = await fetch(target.url, { method: 'POST', headers, body: req.body, signal: AbortSignal.timeout(this.deps.options.timeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) {
        this.deps.metrics.webhookRequests.inc({ result: 'ok' });
        return null;
      }
      this.deps.metrics.webhookRequests.inc({ result: 'status' });
      return `HTTP ${res.status}`;
    } catch (err) {
      this.deps.metrics.webhookRequests.inc({ result: 'error' });
      return (err as Error).message;
    }
  }

  private done(batch: Pending[]): void {
    for (const p of batch) if (--p.left === 0) p.delivery.ack();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.sleeping.delete(t);
        resolve();
      }, ms);
      this.sleeping.add(t);
    });
  }
}
