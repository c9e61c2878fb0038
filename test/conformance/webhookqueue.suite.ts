/**
 * The WebhookQueue contract (src/engines/webhookqueue/queue.ts), run against every implementation: in-process and
 * JetStream.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookDelivery, WebhookEvent, WebhookQueue } from '../../src/engines/webhookqueue/queue.js';
import { sleep, waitFor } from '../helpers/wait.js';

export interface WebhookQueueHarness {
  /** `n` queue instances sharing one queue (as `n` nodes would; in-process may return one instance n times). */
  queues(n: number): Promise<WebhookQueue[]>;
  /** How long a dead consumer's events take to come back, ms (0 when stopping gives them back at once). */
  readonly redeliverMs: number;
  cleanup(): Promise<void>;
}

function event(n: number): WebhookEvent {
  return { id: randomUUID(), ts: Date.now(), name: 'member_added', tenant: 'acme', room: 'lobby', user: `u${n}` };
}

export function webhookQueueConformance(name: string, factory: () => Promise<WebhookQueueHarness>): void {
  describe(`WebhookQueue conformance: ${name}`, () => {
    let harness: WebhookQueueHarness | undefined;
    afterEach(async () => {
      await harness?.cleanup();
      harness = undefined;
    });
    const open = async (n: number): Promise<WebhookQueue[]> => {
      harness = await factory();
      return harness.queues(n);
    };

    it('hands each pushed event out once, in order, and stores a repeated id once', async () => {
      const [q] = await open(1);
      const events = Array.from({ length: 20 }, (_, i) => event(i));
      await q!.push(events.slice(0, 10));
      await q!.push([...events.slice(10), events[3]!]);
      const got: string[] = [];
      const c = q!.consume((d) => {
        got.push(d.event.id);
        d.ack();
      });
      await waitFor(() => got.length >= 20, 10_000, '20 events');
      await sleep(200);
      expect(got).toEqual(events.map((e) => e.id));
      await c.stop();
    });

    it('shares the events among the consumers of several instances, each to one', async () => {
      const qs = await open(3);
      const got = new Map<string, number>();
      const consumers = qs.map((q) =>
        q.consume((d) => {
          got.set(d.event.id, (got.get(d.event.id) ?? 0) + 1);
          d.ack();
        }),
      );
      const events = Array.from({ length: 60 }, (_, i) => event(i));
      await Promise.all(qs.map((q, i) => q.push(events.slice(i * 20, i * 20 + 20))));
      await waitFor(() => got.size >= 60, 10_000, '60 events');
      await sleep(200);
      expect([...got.values()].every((n) => n === 1)).toBe(true);
      await Promise.all(consumers.map((c) => c.stop()));
    });

    it('hands a retried event out again after its delay, and one a stopped consumer held to another consumer', async () => {
      const [q1, q2] = await open(2);
      const e = event(1);
      await q1!.push([e]);
      const first: WebhookDelivery[] = [];
      const c1 = q1!.consume((d) => first.push(d));
      await waitFor(() => first.length === 1, 10_000, 'first delivery');
      const t = Date.now();
      first[0]!.retry(300);
      await waitFor(() => first.length === 2, 10_000, 'redelivery');
      expect(Date.now() - t).toBeGreaterThanOrEqual(250);
      expect(first[1]!.event.id).toBe(e.id);
      expect(first[1]!.redelivered).toBe(1);
      // Held, not acked, consumer stops: another takes it.
      await c1.stop();
      const second: WebhookDelivery[] = [];
      const c2 = q2!.consume((d) => second.push(d));
      await waitFor(() => second.length === 1, 10_000 + harness!.redeliverMs, 'delivery to the other consumer');
      expect(second[0]!.event.id).toBe(e.id);
      second[0]!.ack();
      await c2.stop();
    });

    it('keeps a held event in progress however long it is held, and bounds what a consumer holds', async () => {
      const [q1, q2] = await open(2);
      await q1!.push(Array.from({ length: 5 }, (_, i) => event(i)));
      const held: WebhookDelivery[] = [];
      const c1 = q1!.consume((d) => held.push(d), { maxInFlight: 2 });
      await waitFor(() => held.length === 2, 10_000, 'two held');
      const other: WebhookDelivery[] = [];
      const c2 = q2!.consume((d) => other.push(d), { maxInFlight: 10 });
      await waitFor(() => other.length === 3, 10_000, 'the rest to the other consumer');
      await sleep(Math.max(500, harness!.redeliverMs * 1.5));
      expect(held).toHaveLength(2);
      expect(other).toHaveLength(3);
      for (const d of [...held, ...other]) d.ack();
      await Promise.all([c1.stop(), c2.stop()]);
    });
  });
}
