import { fewAdd, fewDelete, fewEach, fewSize, type Few } from '../../util/few.js';
import type { Backplane, BackplaneSubscription } from './backplane.js';
import { EngineError } from '../errors.js';

/** Called when a subscription handler throws; the bus keeps delivering to everyone else. */
export type HandlerErrorListener = (error: unknown, subject: string) => void;

export interface MemoryBusOptions {
  /**
   * Receives exceptions thrown by subscription handlers. Default: `process.emitWarning`, so a buggy
   * handler is visible without crashing the process or stopping delivery to other subscribers.
   */
  onHandlerError?: HandlerErrorListener;
}

/**
 * One subscription's delivery queue (internal to the memory backplane; exported for typing only). Payloads are queued at publish time and drained in a
 * microtask, so every subscriber sees one publisher's messages in publish order, asynchronously.
 */
export class Subscriber implements BackplaneSubscription {
  /** Payloads waiting for the next microtask (null when none: most subscribers are idle). */
  private queue: Uint8Array[] | null = null;
  private scheduled = false;
  active = true;
  /** @internal The backplane that made this subscription (a field rather than a closure per subscription). */
  owner: MemoryBackplane | null = null;

  constructor(
    readonly subject: string,
    private readonly handler: (payload: Uint8Array) => void,
    private readonly onError: HandlerErrorListener,
  ) {}

  async unsubscribe(): Promise<void> {
    this.owner?.detach(this);
  }

  enqueue(payload: Uint8Array): void {
    if (this.queue === null) this.queue = [payload];
    else this.queue.push(payload);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    // Take the current queue; anything published by handlers below is drained in a later microtask.
    const batch = this.queue ?? [];
    this.queue = null;
    for (const payload of batch) {
      // Checked per message: an unsubscribe (even from inside a handler) stops delivery at once.
      if (!this.active) return;
      try {
        this.handler(payload);
      } catch (error) {
        this.onError(error, this.subject);
      }
    }
  }
}

/**
 * MemoryBus: the in-process "broker" shared by every MemoryBackplane attached to it. Several
 * backplanes on one bus behave like several gateway nodes on one NATS server, so a test can run N
 * nodes in one process. Payload bytes are passed by reference (they are immutable by convention).
 *
 * `fail(detail)` / `recover()` simulate a broker outage: while failed, every attached backplane's
 * `publish` rejects and `health()` reports the detail.
 */
export class MemoryBus {
  /** Subject → its subscribers (usually one per subject, e.g. a user's, so no Set until two). */
  private readonly subjects = new Map<string, Few<Subscriber>>();
  private readonly onError: HandlerErrorListener;
  private outage: string | undefined;

  constructor(options: MemoryBusOptions = {}) {
    this.onError =
      options.onHandlerError ??
      ((error, subject) => {
        const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
        process.emitWarning(`backplane handler for "${subject}" threw: ${detail}`, 'SwitchboardBackplaneWarning');
      });
  }

  /** Simulates a broker outage until `recover()`. */
  fail(detail = 'memory bus is down'): void {
    this.outage = detail;
  }

  recover(): void {
    this.outage = undefined;
  }

  /** Why the bus is unavailable, or undefined when it is up. */
  get down(): string | undefined {
    return this.outage;
  }

  /** Number of active subscriptions on a subject (for tests and metrics). */
  interest(subject: string): number {
    return fewSize(this.subjects.get(subject));
  }

  /** Queues the payload for every active subscription of exactly this subject. */
  publish(subject: string, payload: Uint8Array): void {
    if (this.outage !== undefined) throw new EngineError('backplane', 'unavailable', `backplane publish failed: ${this.outage}`);
    fewEach(this.subjects.get(subject), (sub) => sub.enqueue(payload));
  }

  /** @internal Used by MemoryBackplane. */
  add(subject: string, handler: (payload: Uint8Array) => void): Subscriber {
    const sub = new Subscriber(subject, handler, this.onError);
    this.subjects.set(subject, fewAdd(this.subjects.get(subject), sub));
    return sub;
  }

  /** @internal Used by MemoryBackplane. */
  remove(sub: Subscriber): void {
    sub.active = false;
    const subs = this.subjects.get(sub.subject);
    if (subs === undefined) return;
    const rest = fewDelete(subs, sub);
    if (rest === null) this.subjects.delete(sub.subject);
    else this.subjects.set(sub.subject, rest);
  }
}

/**
 * MemoryBackplane: one node's view of a MemoryBus (implements the Backplane contract in process).
 * Subscriptions are active as soon as `subscribe` resolves; `close()` removes all of this node's
 * subscriptions, after which `publish` and `subscribe` reject.
 */
export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  private readonly subs = new Set<Subscriber>();
  private closed = false;

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {}

  async publish(subject: string, payload: Uint8Array): Promise<void> {
    if (this.closed) throw new EngineError('backplane', 'closed', 'backplane is closed');
    this.bus.publish(subject, payload);
  }

  async subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<BackplaneSubscription> {
    if (this.closed) throw new EngineError('backplane', 'closed', 'backplane is closed');
    if (this.bus.down !== undefined) throw new EngineError('backplane', 'unavailable', `backplane subscribe failed: ${this.bus.down}`);
    const sub = this.bus.add(subject, handler);
    sub.owner = this;
    this.subs.add(sub);
    return sub;
  }

  /** @internal Ends one subscription (Subscriber.unsubscribe). */
  detach(sub: Subscriber): void {
    this.subs.delete(sub);
    this.bus.remove(sub);
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'closed' };
    const down = this.bus.down;
    return down === undefined ? { ok: true } : { ok: false, detail: down };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sub of this.subs) this.bus.remove(sub);
    this.subs.clear();
  }
}
