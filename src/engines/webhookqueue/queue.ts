/**
 * WebhookQueue: the durable work queue between the nodes that decide webhook events and the senders that POST
 * them (docs/hooks.md). In-process in embedded mode, a JetStream work-queue stream in a cluster.
 */
import type { Json } from '../types.js';

/** What happened, in Switchboard's own names (the Pusher format renames them: docs/hooks.md). */
export type WebhookEventName = 'room_occupied' | 'room_vacated' | 'member_added' | 'member_removed' | 'client_event';

/** One webhook event, as queued. */
export interface WebhookEvent {
  /** Unique (a UUID): the same event delivered twice has the same id, for the backend to dedupe. */
  readonly id: string;
  /** When it was decided (the presence store's clock for presence events), ms since the epoch. */
  readonly ts: number;
  readonly name: WebhookEventName;
  readonly tenant: string;
  readonly room: string;
  /** member_added, member_removed, client_event: the user. */
  readonly user?: string;
  /** client_event: the event name and data, and the sender's connection (Pusher socket id or v1 connection id). */
  readonly event?: string;
  readonly data?: Json;
  readonly socketId?: string;
}

/** One event handed to a consumer; it stays in progress (not given to anyone else) until `ack` or `retry`. */
export interface WebhookDelivery {
  readonly event: WebhookEvent;
  /** How many times it was handed to a consumer before (0 the first time). */
  readonly redelivered: number;
  /** Done with (sent or dead-lettered): removed from the queue. */
  ack(): void;
  /** Not done: handed out again (to any consumer) after `delayMs`. */
  retry(delayMs: number): void;
}

export interface WebhookConsumeOptions {
  /** Deliveries handed out and neither acked nor retried at most (the sender's memory bound). Default 1000. */
  maxInFlight: number;
}

/**
 * Contract (test/conformance/webhookqueue.suite.ts):
 * - `push` resolves once every event is durable in the queue's sense (JetStream: stored by the stream; in-process:
 *   in this process's memory) and rejects with an EngineError (`closed`, `unavailable`, `timeout`) otherwise.
 *   Pushing an event with an id pushed before (within the dedupe window, 2 minutes) stores it once.
 * - Each stored event is handed to one consumer among all instances sharing the queue, at least once: it is handed
 *   out again (to any consumer) after `retry(delay)`, after its consumer stopped without acking it, and — for a queue
 *   shared between processes — after its consumer's process died (the redelivery wait, a few seconds). A handed-out
 *   event stays in progress for as long as its consumer lives, however long it is held. Acked events are gone.
 * - Events are handed out in push order (retried ones come again after the delay, so order is not guaranteed).
 * - A consumer holds at most `maxInFlight` deliveries at once.
 */
export interface WebhookQueue {
  readonly kind: string;
  push(events: readonly WebhookEvent[]): Promise<void>;
  consume(handler: (delivery: WebhookDelivery) => void, options?: Partial<WebhookConsumeOptions>): WebhookConsumer;
  /** Events stored and not yet acked (approximate in a cluster: refreshed every second). */
  depth(): number;
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

export interface WebhookConsumer {
  /** Stops handing out; deliveries not acked yet are given back. */
  stop(): Promise<void>;
}

export const defaultWebhookConsumeOptions: WebhookConsumeOptions = { maxInFlight: 1000 };
