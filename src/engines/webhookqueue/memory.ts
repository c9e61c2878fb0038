/**
 * MemoryWebhookQueue: the embedded WebhookQueue, an in-process FIFO. Durable only as long as the process lives
 * (embedded mode has one process; a crash loses what was not sent, as it loses the connections that made it).
 */
import { EngineError } from '../errors.js';
import {
  defaultWebhookConsumeOptions,
  type WebhookConsumeOptions,
  type WebhookConsumer,
  type WebhookDelivery,
  type WebhookEvent,
  type WebhookQueue,
} from './queue.js';

interface Item {
  readonly event: WebhookEvent;
  redelivered: number;
}

/** Ids remembered for dedupe, ms. */
const DEDUPE_MS = 120_000;

export class MemoryWebhookQueue implements WebhookQueue {
  readonly kind = 'memory';
  private readonly ready: Item[] = [];
  private readonly consumers = new Set<MemoryConsumer>();
  private readonly seen = new Map<string, number>();
  private held = 0;
  private closed = false;

  async push(events: readonly WebhookEvent[]): Promise<void> {
    if (this.closed) throw new EngineError('webhookqueue', 'closed', 'webhook queue is closed');
    const now = Date.now();
    for (const [id, at] of this.seen) {
      if (now - at < DEDUPE_MS) break;
      this.seen.delete(id);
    }
    for (const event of events) {
      if (this.seen.has(event.id)) continue;
      this.seen.set(event.id, now);
      this.ready.push({ event, redelivered: 0 });
    }
    this.pump();
  }

  consume(handler: (delivery: WebhookDelivery) => void, options: Partial<WebhookConsumeOptions> = {}): WebhookConsumer {
    if (this.closed) throw new EngineError('webhookqueue', 'closed', 'webhook queue is closed');
    const consumer = new MemoryConsumer(this, handler, { ...defaultWebhookConsumeOptions, ...options });
    this.consumers.add(consumer);
    queueMicrotask(() => this.pump());
    return consumer;
  }

  depth(): number {
    return this.ready.length + this.held;
  }

  health(): { ok: boolean; detail?: string } {
    return this.closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of [...this.consumers]) await c.stop();
  }

  /** Hands ready events to consumers with room, in order. */
  pump(): void {
    for (const c of this.consumers) {
      while (this.ready.length > 0 && c.hasRoom()) {
        const item = this.ready.shift()!;
        this.held++;
        c.give(item);
      }
    }
  }

  /** A delivery ended: acked (gone) or given back (after `delayMs`). */
  settle(item: Item, back: boolean, delayMs: number): void {
    this.held--;
    if (!back) {
      this.pump();
      return;
    }
    item.redelivered++;
    this.held++;
    const t = setTimeout(() => {
      this.held--;
      if (this.closed) return;
      this.ready.unshift(item);
      this.pump();
    }, delayMs);
    t.unref();
  }

  detach(c: MemoryConsumer): void {
    this.consumers.delete(c);
  }
}

class MemoryConsumer implements WebhookConsumer {
  private readonly open = new Set<Item>();
  private stopped = false;

  constructor(
    private readonly queue: MemoryWebhookQueue,
    private readonly handler: (delivery: WebhookDelivery) => void,
    private readonly options: WebhookConsumeOptions,
  ) {}

  hasRoom(): boolean {
    return !this.stopped && this.open.size < this.options.maxInFlight;
  }

  give(item: Item): void {
    this.open.add(item);
    let done = false;
    const end = (back: boolean, delayMs: number): void => {
      if (done || !this.open.delete(item)) return;
      done = true;
      this.queue.settle(item, back, delayMs);
    };
    this.handler({ event: item.event, redelivered: item.redelivered, ack: () => end(false, 0), retry: (ms) => end(true, Math.max(0, ms)) });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.detach(this);
    for (const item of [...this.open]) {
      this.open.delete(item);
      this.queue.settle(item, true, 0);
    }
  }
}
