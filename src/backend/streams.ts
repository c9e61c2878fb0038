/**
 * JetStream objects of durable services, created by whoever needs them first (a gateway at start-up for
 * the services in --durable-services, or a service started with `durable: true`). An existing stream or
 * consumer is used as it is: its limits are whatever its creator set, so gateways and services never
 * fight over configuration.
 */
import { AckPolicy, DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { DEAD_LETTER_STREAM, DURABLE_CONSUMER, streamName } from './wire.js';

export interface QueueLimits {
  /** Messages waiting in one service's queue before sends are refused (default 100,000). */
  maxMsgs?: number;
  /** Bytes waiting in one service's queue (default 256 MiB). */
  maxBytes?: number;
  /** Window in which a repeated (tenant, user, idem) is stored once (ms, default 2 minutes). */
  duplicateWindowMs?: number;
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 404 || /not found/i.test(err.message));
}

/** Creates an object unless it exists; a concurrent creator winning the race is fine too. */
async function addIfMissing(info: () => Promise<unknown>, add: () => Promise<unknown>): Promise<void> {
  try {
    await info();
    return;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  try {
    await add();
  } catch (err) {
    await info().catch(() => {
      throw err;
    });
  }
}

/** The work-queue stream `SB_SVC_<service>` on `sbq.<service>.>` and the dead-letter stream. */
export async function ensureServiceStream(jsm: JetStreamManager, service: string, limits: QueueLimits = {}): Promise<void> {
  const name = streamName(service);
  await addIfMissing(
    () => jsm.streams.info(name),
    () =>
      jsm.streams.add({
        name,
        subjects: [`sbq.${service}.>`],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        discard: DiscardPolicy.New,
        max_msgs: limits.maxMsgs ?? 100_000,
        max_bytes: limits.maxBytes ?? 256 * 1024 * 1024,
        duplicate_window: nanos(limits.duplicateWindowMs ?? 120_000),
      }),
  );
  await addIfMissing(
    () => jsm.streams.info(DEAD_LETTER_STREAM),
    () =>
      jsm.streams.add({
        name: DEAD_LETTER_STREAM,
        subjects: ['sbdlq.>'],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_msgs: 100_000,
        max_age: nanos(7 * 24 * 3600 * 1000),
      }),
  );
}

/**
 * The shared durable pull consumer `svc` of a service's stream. Redelivery is unlimited on the server
 * (`max_deliver` -1): the SDK counts deliveries and dead-letters at its own limit, so a message whose
 * last attempt died with its instance is still dead-lettered (by the next instance) instead of stranded.
 */
export async function ensureConsumer(jsm: JetStreamManager, service: string, ackWaitMs: number): Promise<void> {
  const stream = streamName(service);
  await addIfMissing(
    () => jsm.consumers.info(stream, DURABLE_CONSUMER),
    () =>
      jsm.consumers.add(stream, {
        durable_name: DURABLE_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(ackWaitMs),
        max_deliver: -1,
        max_ack_pending: 10_000,
      }),
  );
}
