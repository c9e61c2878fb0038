/**
 * The JetStream side of `DurableLog.uncommitted`: a room's messages that the history writers may not have
 * committed yet, read from the stream itself, so a history page can be filled while PostgreSQL has a hole
 * (a killed writer's batch before its redelivery, batches committed out of order by parallel writers).
 *
 * 1. The durable consumer's ack floor F is read first. Every stream message at or below F is acked, and
 *    a writer acks only after its insert committed, so all of them are in PostgreSQL.
 * 2. The room's subject is read from stream seq F+1 on by a throwaway consumer (ephemeral, memory, no
 *    acks, deleted afterwards and removed by the server after `inactiveMs` anyway), in chunks, until the
 *    wanted seqs are all found or the messages pending at its creation are read.
 * So a message stored before the call is in the answer or was committed before step 1. The scan is
 * bounded: more than `maxScan` messages of the room above the floor (writers far behind) is an error,
 * answered `unavailable` by history reads.
 */
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { RoomMessage, RoomRef } from '../types.js';
import { EngineError } from '../errors.js';

export interface ScanTarget {
  readonly stream: string;
  /** The history writers' durable consumer, whose ack floor bounds the scan. */
  readonly consumer: string;
  /** The room's stream subject. */
  readonly subject: string;
}

export interface ScanOptions {
  /** Most room messages above the ack floor read before giving up. */
  readonly maxScan: number;
  /** Messages asked for per pull, and that pull's expiry, ms. */
  readonly chunk: number;
  readonly expiresMs: number;
  /** The server deletes the scan consumer after this long unused, if the delete below is lost. */
  readonly inactiveMs: number;
}

export const defaultScanOptions: ScanOptions = { maxScan: 20_000, chunk: 1_000, expiresMs: 2_000, inactiveMs: 30_000 };

export async function scanUncommitted(
  jsm: JetStreamManager,
  js: JetStreamClient,
  target: ScanTarget,
  ref: RoomRef,
  seqs: readonly number[],
  o: ScanOptions = defaultScanOptions,
): Promise<RoomMessage[]> {
  const wanted = new Set(seqs);
  if (wanted.size === 0) return [];
  const info = await jsm.consumers.info(target.stream, target.consumer);
  // Nothing delivered-but-unacked and nothing undelivered: every stored message is committed.
  if (info.num_ack_pending === 0 && info.num_pending === 0) return [];
  const scan = await jsm.consumers.add(target.stream, {
    filter_subject: target.subject,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: info.ack_floor.stream_seq + 1,
    ack_policy: AckPolicy.None,
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: nanos(o.inactiveMs),
  });
  try {
    let remaining = scan.num_pending;
    if (remaining > o.maxScan) {
      throw new EngineError(
        'durablelog',
        'unavailable',
        `${remaining} messages of ${ref.tenant}/${ref.room} are above the history writers' ack floor (more than ${o.maxScan} to scan)`,
      );
    }
    const found: RoomMessage[] = [];
    const consumer = await js.consumers.get(target.stream, scan.name);
    while (remaining > 0 && wanted.size > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(o.chunk, remaining), expires: o.expiresMs });
      let got = 0;
      for await (const m of batch) {
        got++;
        const message = m.json<RoomMessage>();
        if (message.tenant === ref.tenant && message.room === ref.room && wanted.has(message.seq)) {
          wanted.delete(message.seq);
          found.push(message);
        }
      }
      if (got === 0) throw new EngineError('durablelog', 'unavailable', `scan of ${target.subject} stalled with ${remaining} messages to read`);
      remaining -= got;
    }
    return found;
  } finally {
    void jsm.consumers.delete(target.stream, scan.name).catch(() => undefined);
  }
}
