/**
 * The webhook producer of one node: turns presence changes (from HookedPresence) and client events into webhook
 * events, once for the cluster, and puts them in the WebhookQueue.
 *
 * - A join that changed presence in a room with webhooks is settled at once (`settleJoin`: occupied / added, decided
 *   atomically in the presence store, so exactly one node reports each); a leave schedules the room's settle one grace
 *   period later (`watch`). Every node runs the settle loop (`settleDue` every `settleIntervalMs`), so whichever node
 *   is alive settles a room whose leaver's node died, or whose members expired with a crashed node.
 * - Events that the queue refuses (JetStream down) wait in a bounded buffer (oldest dropped and counted beyond it)
 *   and are pushed again every second.
 * None of this is on a client's path: calls return at once, the work is asynchronous.
 */
import { randomUUID } from 'node:crypto';
import type { Settled, SettleScope } from '../engines/presence/settle.js';
import type { PresenceStore } from '../engines/presence/presence.js';
import type { Json, RoomRef } from '../engines/types.js';
import type { WebhookEvent, WebhookEventName, WebhookQueue } from '../engines/webhookqueue/queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PresenceChangeSink } from './hooked-presence.js';
import type { WebhookTargets } from './targets.js';

/** Rooms one settle call takes at most. */
const SETTLE_LIMIT = 100;
/** Events kept for a queue that refuses them, at most. */
const MAX_UNPUSHED = 10_000;

/** A client event as the protocols report it (Pusher `client-*`, a v1 client publish). */
export interface ClientEvent {
  readonly ref: RoomRef;
  readonly event: string;
  readonly data: Json;
  /** The sender's connection: Pusher socket id, or v1 connection id. */
  readonly socketId: string;
  readonly user?: string;
}

/** What the protocols call for client events; O(1) for a tenant without webhooks. */
export interface ClientEventSink {
  clientEvent(e: ClientEvent): void;
}

export interface WebhookProducerDeps {
  readonly targets: WebhookTargets;
  readonly queue: WebhookQueue;
  /** The real store (not the HookedPresence around it). */
  readonly presence: PresenceStore;
  readonly metrics: Pick<Metrics, 'webhookEvents' | 'webhookErrors'>;
  readonly log: Logger;
  /** The presence TTL: a watched occupied room is settled again within it (crash detection). */
  readonly ttlMs: number;
  readonly settleIntervalMs: number;
}

export class WebhookProducer implements PresenceChangeSink, ClientEventSink {
  private timer: NodeJS.Timeout | null = null;
  private settling = false;
  private unpushed: WebhookEvent[] = [];
  private pushing = false;

  constructor(private readonly deps: WebhookProducerDeps) {}

  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.deps.settleIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  scope(ref: RoomRef): SettleScope | null {
    return this.deps.targets.scope(ref);
  }

  joined(ref: RoomRef, user: string, scope: SettleScope): void {
    const { presence } = this.deps;
    presence
      .settleJoin(ref, user, scope)
      .then(async (s) => {
        this.emit(s);
        // An occupied room stays watched: expired members (a crashed node's) are found by the settle loop.
        if (s.occupied) await presence.watch(ref, this.deps.ttlMs);
      })
      .catch((err: unknown) => this.failed('settle', err));
  }

  left(ref: RoomRef, scope: SettleScope): void {
    this.deps.presence.watch(ref, scope.graceMs).catch((err: unknown) => this.failed('settle', err));
  }

  clientEvent(e: ClientEvent): void {
    if (!this.deps.targets.wantsClientEvent(e.ref)) return;
    this.push([
      {
        id: randomUUID(),
        ts: Date.now(),
        name: 'client_event',
        tenant: e.ref.tenant,
        room: e.ref.room,
        event: e.event,
        data: e.data,
        socketId: e.socketId,
        ...(e.user !== undefined ? { user: e.user } : {}),
      },
    ]);
  }

  /** One round of the settle loop (exposed for tests): settles due rooms until fewer than a batch are due. */
  async tick(): Promise<void> {
    if (this.settling) return;
    this.settling = true;
    try {
      for (;;) {
        const settled = await this.deps.presence.settleDue((ref) => this.deps.targets.scope(ref), SETTLE_LIMIT);
        for (const s of settled) this.emit(s);
        if (settled.length < SETTLE_LIMIT) break;
      }
      if (this.unpushed.length > 0) this.push([]);
    } catch (err) {
      this.failed('settle', err);
    } finally {
      this.settling = false;
    }
  }

  private emit(s: Settled): void {
    const events: WebhookEvent[] = [];
    const add = (name: WebhookEventName, user?: string): void => {
      if (this.deps.targets.receivers(s.ref.tenant, s.ref.room, name).length === 0) return;
      events.push({ id: randomUUID(), ts: s.at, name, tenant: s.ref.tenant, room: s.ref.room, ...(user !== undefined ? { user } : {}) });
    };
    if (s.occupied) add('room_occupied');
    for (const u of s.added) add('member_added', u);
    for (const u of s.removed) add('member_removed', u);
    if (s.vacated) add('room_vacated');
    if (events.length > 0) this.push(events);
  }

  private push(events: WebhookEvent[]): void {
    for (const e of events) this.deps.metrics.webhookEvents.inc({ event: e.name });
    this.unpushed.push(...events);
    if (this.unpushed.length > MAX_UNPUSHED) {
      const dropped = this.unpushed.splice(0, this.unpushed.length - MAX_UNPUSHED);
      this.deps.log.error({ dropped: dropped.length }, 'webhook events dropped: the queue refused them for too long');
    }
    if (this.pushing || this.unpushed.length === 0) return;
    this.pushing = true;
    const batch = this.unpushed;
    this.unpushed = [];
    this.deps.queue.push(batch).then(
      () => {
        this.pushing = false;
        if (this.unpushed.length > 0) this.push([]);
      },
      (err: unknown) => {
        // Retried by the settle loop's next round.
        this.pushing = false;
        this.failed('queue', err);
        this.unpushed = [...batch, ...this.unpushed];
      },
    );
  }

  private failed(stage: 'settle' | 'queue', err: unknown): void {
    this.deps.metrics.webhookErrors.inc({ stage });
    this.deps.log.warn({ err }, `webhook ${stage} failed; retrying`);
  }
}
