import type { RoomMessage, RoomRef } from '../types.js';

/**
 * DurableLog: every acked room message, durable before the permanent store has it.
 *
 * Contract (test/conformance/durablelog.suite.ts):
 * - `append` resolves only when the message is durable in this log's sense (JetStream: stored by the
 *   stream; in-process: committed by the attached consumer, i.e. in the MessageStore), and rejects
 *   with an EngineError otherwise (engines/errors.ts: `closed` after close, `unavailable` while the broker is
 *   unreachable, `timeout` without an answer, `full` at the pending bound, `conflict` for a reused seq): never a
 *   false ack. Appending the same (tenant, room, seq) twice stores it once.
 * - A consumer receives messages in batches of at most `maxBatch`, in append order per room, at least
 *   once: a batch whose handler rejects is delivered again after `retryMs` (with backoff up to `maxRetryMs`), and nothing
 *   after it in the same room is delivered before it succeeds.
 * - `lag()` reports how many appended messages the consumer has not yet committed and the age of the
 *   oldest of them.
 * - `uncommitted(ref, seqs)` returns the messages of the room with one of `seqs` that the log holds and
 *   the consumer had not committed when the call began (it may also return committed ones). So a
 *   message stored by `append` before the call is in its answer or in a MessageStore read that starts
 *   after the call resolved: history reads fill the store's holes from it (gateway/history-fill.ts).
 *   It rejects when the log cannot answer (never a partial answer presented as complete).
 */
export interface DurableLog {
  readonly kind: string;
  append(message: RoomMessage): Promise<void>;
  consume(handler: (batch: RoomMessage[]) => Promise<void>, options?: Partial<ConsumeOptions>): DurableConsumer;
  lag(): { messages: number; oldestMs: number };
  uncommitted(ref: RoomRef, seqs: readonly number[]): Promise<RoomMessage[]>;
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

export interface ConsumeOptions {
  /** Max messages per handler call. Default 500. */
  maxBatch: number;
  /** Wait at most this long to fill a batch, ms. Default 20. */
  maxWaitMs: number;
  /** First retry delay after a failed batch, doubled up to `maxRetryMs`. Default 200. */
  retryMs: number;
  /** Longest delay between retries of a failing batch. Default 30,000. */
  maxRetryMs: number;
}

export interface DurableConsumer {
  stop(): Promise<void>;
}
