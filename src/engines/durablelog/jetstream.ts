/**
 * JetStreamDurableLog: the cluster DurableLog, one JetStream stream over the room messages
 * (@nats-io/jetstream v3), read by one durable pull consumer shared by every history writer.
 *
 * Subjects. Messages are stored under their own prefix, `<prefix>.<tenant>.<room>` (default `sb.d`; the
 * room as one token, `.` written as `%`, protocol/names.ts `roomToken`),
 * NOT the backplane's `sb.r.<tenant>.<room>`: the backplane subjects also carry presence envelopes and
 * may run over Redis pub/sub, and a stream capturing them would either store presence or make one publish
 * both the durable write and the fan-out, which ties delivery order to JetStream and delivers twice when
 * the publisher then also publishes on the backplane. So a publish is two steps, as ARCHITECTURE.md §4
 * says: JetStream stores (the ack waits for it), then the backplane fans out. The payload is the
 * RoomMessage as JSON (with `event` only when the message has one).
 *
 * Behaviour (the DurableLog contract, durablelog.ts, plus):
 * - `append` publishes with `Nats-Msg-Id` = `tenant/room/seq`, so a retry within the stream's
 *   duplicate window is stored once, and resolves on the stream's PubAck: acked means stored by
 *   JetStream (durable on disk only under the `sync_interval` / replica settings of docs/scaling.md).
 *   Appends are not serialised: they are pipelined on one reply subscription (jetstream-acks.ts), so
 *   many are in flight at once. It rejects
 *   (never a false ack) when the connection is down or closed, drops while the ack is awaited (at once, so
 *   the client's retry is not held back), or no ack arrives within `publishTimeoutMs`.
 * - The stream is created, or updated to the configured replicas / max age / max bytes, by `open`.
 *   Retention is limits-based (max age, max bytes, oldest dropped first): history must be written to
 *   the MessageStore before a message ages out.
 * - One durable consumer (explicit acks) is created by `open`, so lag is counted from then on even
 *   before `consume`. Several processes calling `consume` on the same stream share it: each message goes
 *   to one of them. A batch is acked message by message only after its handler resolved; a failing
 *   batch is retried in-process (same batch, backoff from `retryMs` doubling to `maxRetryMs`) and nothing after
 *   it is handed over meanwhile; held messages are kept "in progress" (`working()` once a quarter of
 *   `ackWaitMs` passed since their delivery or last one) so the server does not redeliver them elsewhere.
 *   A crash before the acks means redelivery, after the short ack wait (5 s by default, not 30 s): at
 *   least once, so the handler must be idempotent (the MessageStore insert is).
 * - `uncommitted` reads a room's messages above the consumer's ack floor from the stream
 *   (jetstream-scan.ts), so history reads can fill what PostgreSQL lacks meanwhile.
 * - Pull requests expire after `pullExpiresMs` (idle heartbeats every half of it), and the consumer's API
 *   requests time out after it too. A pull lives on the consumer's leader: when that server dies, the
 *   client notices two missed heartbeats, asks for the consumer's info (again every `pullExpiresMs` while
 *   no leader answers) and pulls from the new leader. So this bounds how long writing stalls after a
 *   consumer leader change beyond the election itself (with the client's defaults, 30 s pulls and the
 *   10 s publish timeout for the info request, it stalled 20–45 s on a 3-server cluster).
 * - `lag()` is refreshed every `lagPollMs` from the consumer info: messages = not yet delivered + delivered
 *   but not acked; oldestMs = age of the first unacked message.
 */
import {
  jetstream,
  jetstreamManager,
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { roomToken } from '../../protocol/names.js';
import type { RoomMessage, RoomRef } from '../types.js';
import type { ConsumeOptions, DurableConsumer, DurableLog } from './durablelog.js';
import { PipelinedPublisher } from './jetstream-acks.js';
import { scanUncommitted } from './jetstream-scan.js';
import { defaultConsumeOptions, Signal } from './memory.js';
import { EngineError } from '../errors.js';

export interface JetStreamLogOptions {
  /** Stream name (default `SWITCHBOARD`). */
  stream: string;
  /** Subject prefix; the stream captures `<prefix>.>` (default `sb.d`). */
  subjectPrefix: string;
  /** Durable consumer name of the history writers (default `history-writer`). */
  consumer: string;
  /** Place the stream in this NATS cluster of a supercluster (a region's, docs/scaling.md "Regions"); default: anywhere. */
  placementCluster?: string;
  /** Stream replicas, 1..5 (default 1; 3 in production, docs/scaling.md). */
  replicas: number;
  /** Oldest message kept, ms (default 7 days). */
  maxAgeMs: number;
  /** Most bytes kept; -1 unlimited (default 10 GiB). */
  maxBytes: number;
  /** Nats-Msg-Id dedupe window, ms (default 2 minutes). */
  duplicateWindowMs: number;
  /**
   * Consumer ack wait, ms: a delivery neither acked nor marked in progress for this long is redelivered
   * (default 5 s). A live writer marks what it holds in progress every quarter of it, so this bounds how
   * long a killed writer's messages stay away from PostgreSQL (plus the pull expiry).
   */
  ackWaitMs: number;
  /** Most delivered-but-unacked messages on the consumer (default 100,000). */
  maxAckPending: number;
  /** `lag()` refresh period, ms (default 1,000). */
  lagPollMs: number;
  /** `append` rejects if the stream has not acked within this long, ms (default 10,000). */
  publishTimeoutMs: number;
  /** Consumer pull request lifetime and consumer API timeout, ms (default 2,000, at least 1,000; heartbeats every half of it). */
  pullExpiresMs: number;
  /** `close()` also closes the connection (when the log was given its own). Default false. */
  closeConnection?: boolean;
  /** Told about every failed handler call before its retry. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Told about a stored message that is not a RoomMessage (it is terminated, not retried). */
  onPoison?: (error: unknown, subject: string) => void;
}

export const defaultJetStreamLogOptions: JetStreamLogOptions = {
  stream: 'SWITCHBOARD',
  subjectPrefix: 'sb.d',
  consumer: 'history-writer',
  replicas: 1,
  maxAgeMs: 7 * 24 * 3600 * 1000,
  maxBytes: 10 * 1024 ** 3,
  duplicateWindowMs: 120_000,
  ackWaitMs: 5_000,
  maxAckPending: 100_000,
  lagPollMs: 1_000,
  publishTimeoutMs: 10_000,
  pullExpiresMs: 2_000,
};

/**
 * Creates or updates the stream and the durable consumer, then returns the log. The log does not own
 * `nc`: closing the log leaves the connection open (the caller closes it).
 */
export async function openJetStreamDurableLog(nc: NatsConnection, options: Partial<JetStreamLogOptions> = {}): Promise<JetStreamDurableLog> {
  const o: JetStreamLogOptions = { ...defaultJetStreamLogOptions, ...options };
  const jsm = await jetstreamManager(nc, { timeout: o.publishTimeoutMs });
  const config: Partial<StreamConfig> & { name: string } = {
    name: o.stream,
    subjects: [`${o.subjectPrefix}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: o.replicas,
    max_age: o.maxAgeMs > 0 ? nanos(o.maxAgeMs) : 0,
    max_bytes: o.maxBytes,
    duplicate_window: nanos(Math.min(o.duplicateWindowMs, o.maxAgeMs > 0 ? o.maxAgeMs : o.duplicateWindowMs)),
    ...(o.placementCluster !== undefined ? { placement: { cluster: o.placementCluster, tags: [] } } : {}),
  };
  try {
    await jsm.streams.info(o.stream);
    await jsm.streams.update(o.stream, config);
  } catch (err) {
    if (!isNotFound(err))
      throw new EngineError('durablelog', 'invalid', `jetstream: cannot update stream ${o.stream}: ${(err as Error).message}`, { cause: err });
    await jsm.streams.add(config);
  }
  const consumerConfig = {
    durable_name: o.consumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(o.ackWaitMs),
    max_ack_pending: o.maxAckPending,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(o.stream, o.consumer);
    await jsm.consumers.update(o.stream, o.consumer, { ack_wait: consumerConfig.ack_wait, max_ack_pending: o.maxAckPending });
  } catch (err) {
    if (!isNotFound(err))
      throw new EngineError('durablelog', 'invalid', `jetstream: cannot update consumer ${o.consumer}: ${(err as Error).message}`, { cause: err });
    await jsm.consumers.add(o.stream, consumerConfig);
  }
  // This client only serves the consumer (appends go through PipelinedPublisher): its requests are the
  // consumer info calls of a pull that lost its leader, retried until a leader answers.
  return new JetStreamDurableLog(nc, jsm, jetstream(nc, { timeout: pullTimeout(o) }), o);
}

/** The pull expiry and consumer API timeout, ms (the client refuses expiries under 1 s). */
function pullTimeout(o: JetStreamLogOptions): number {
  return Math.max(1_000, o.pullExpiresMs);
}

/** How often held messages are checked, and how long one goes untouched before its in-progress ack, ms. */
function keepAlivePeriod(o: JetStreamLogOptions): number {
  return Math.max(100, Math.floor(o.ackWaitMs / 4));
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && /not found/i.test(err.message);
}

export class JetStreamDurableLog implements DurableLog {
  readonly kind = 'jetstream';
  private closed = false;
  private disconnected: string | undefined;
  private pollError: string | undefined;
  private lagValue = { messages: 0, oldestMs: 0 };
  private readonly lagTimer: NodeJS.Timeout;
  private consumer: JetStreamConsumer | undefined;
  private readonly acks: PipelinedPublisher;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly options: JetStreamLogOptions,
  ) {
    this.acks = new PipelinedPublisher(nc, options.publishTimeoutMs);
    this.lagTimer = setInterval(() => void this.pollLag(), options.lagPollMs);
    this.lagTimer.unref();
    void this.watchStatus();
  }

  /** The stream subject of a room (the room as one subject token: protocol/names.ts `roomToken`). */
  subject(ref: RoomRef): string {
    return `${this.options.subjectPrefix}.${ref.tenant}.${roomToken(ref.room)}`;
  }

  async append(message: RoomMessage): Promise<void> {
    if (this.closed) throw new EngineError('durablelog', 'closed', 'durable log is closed');
    if (this.disconnected !== undefined) throw new EngineError('durablelog', 'unavailable', `jetstream unavailable (${this.disconnected}); not stored`);
    const id = `${message.tenant}/${message.room}/${message.seq}`;
    let ack;
    try {
      ack = await this.acks.publish(this.subject(message), JSON.stringify(message), id);
    } catch (err) {
      throw new EngineError('durablelog', 'unavailable', `jetstream did not store ${id}: ${(err as Error).message}`, { cause: err });
    }
    if (ack.stream !== this.options.stream)
      throw new EngineError('durablelog', 'conflict', `jetstream stored ${id} in stream ${ack.stream}, not ${this.options.stream}`);
    if (ack.duplicate === true) await this.checkDuplicate(message, id, ack.seq);
  }

  /**
   * A duplicate ack is only an ack if the stored message IS this one (a retry). If another message already
   * holds this tenant/room/seq (the sequencer lost its state and handed the seq out again), acking would
   * be a false ack: reject instead.
   */
  private async checkDuplicate(message: RoomMessage, id: string, streamSeq: number): Promise<void> {
    let stored: RoomMessage | null;
    try {
      const m = await this.jsm.streams.getMessage(this.options.stream, { seq: streamSeq });
      stored = m === null ? null : m.json<RoomMessage>();
    } catch (err) {
      throw new EngineError('durablelog', 'unavailable', `jetstream: cannot check duplicate ${id}: ${(err as Error).message}`, { cause: err });
    }
    if (stored === null) return; // aged out of the stream since: it was stored, as the ack says
    if (
      stored.epoch !== message.epoch ||
      stored.ts !== message.ts ||
      stored.from !== message.from ||
      stored.idem !== message.idem ||
      stored.event !== message.event ||
      stored.key !== message.key
    ) {
      throw new EngineError('durablelog', 'conflict', `jetstream already holds another message as ${id} (sequence reused); not stored`);
    }
  }

  /** The newest stored message of a room (null when the stream holds none), e.g. to seed a sequencer. */
  async last(ref: RoomRef): Promise<RoomMessage | null> {
    try {
      const m = await this.jsm.streams.getMessage(this.options.stream, { last_by_subj: this.subject(ref) });
      return m === null ? null : m.json<RoomMessage>();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  consume(handler: (batch: RoomMessage[]) => Promise<void>, options: Partial<ConsumeOptions> = {}): DurableConsumer {
    if (this.closed) throw new EngineError('durablelog', 'closed', 'durable log is closed');
    if (this.consumer !== undefined) throw new EngineError('durablelog', 'invalid', 'durable log already has a consumer');
    const consumer = new JetStreamConsumer(this.js, this.options, handler, { ...defaultConsumeOptions, ...options }, () => {
      if (this.consumer === consumer) this.consumer = undefined;
      void this.pollLag();
    });
    this.consumer = consumer;
    return consumer;
  }

  lag(): { messages: number; oldestMs: number } {
    return { ...this.lagValue };
  }

  /** The room's messages with one of `seqs` above the history writers' ack floor (jetstream-scan.ts). */
  async uncommitted(ref: RoomRef, seqs: readonly number[]): Promise<RoomMessage[]> {
    if (this.closed) throw new EngineError('durablelog', 'closed', 'durable log is closed');
    if (this.disconnected !== undefined) throw new EngineError('durablelog', 'unavailable', `jetstream unavailable (${this.disconnected})`);
    const target = { stream: this.options.stream, consumer: this.options.consumer, subject: this.subject(ref) };
    try {
      return await scanUncommitted(this.jsm, this.js, target, ref, seqs);
    } catch (err) {
      throw new EngineError(
        'durablelog',
        'unavailable',
        `jetstream: cannot read the uncommitted messages of ${ref.tenant}/${ref.room}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'closed' };
    if (this.disconnected !== undefined) return { ok: false, detail: `nats ${this.disconnected}` };
    if (this.pollError !== undefined) return { ok: false, detail: this.pollError };
    return { ok: true };
  }

  /** Stops the consumer after its in-flight batch; appends afterwards reject. The connection stays open unless `closeConnection`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.lagTimer);
    this.acks.close();
    await this.consumer?.stop();
    if (this.options.closeConnection === true) await this.nc.close().catch(() => undefined);
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') this.disconnected = 'disconnected';
      else if (s.type === 'reconnect') this.disconnected = undefined;
      else if (s.type === 'close') this.disconnected = 'closed';
    }
  }

  private async pollLag(): Promise<void> {
    if (this.closed || this.nc.isClosed()) return;
    try {
      const info = await this.jsm.consumers.info(this.options.stream, this.options.consumer);
      const messages = info.num_pending + info.num_ack_pending;
      let oldestMs = 0;
      if (messages > 0) {
        const first = await this.jsm.streams.getMessage(this.options.stream, { seq: info.ack_floor.stream_seq + 1 }).catch(() => null);
        oldestMs = first === null ? this.lagValue.oldestMs : Math.max(0, Date.now() - first.time.getTime());
      }
      this.lagValue = { messages, oldestMs };
      this.pollError = undefined;
    } catch (err) {
      this.pollError = `jetstream consumer info failed: ${(err as Error).message}`;
    }
  }
}

/** The pull loop of one `consume` call: buffer deliveries, hand over batches, ack after commit or retry. */
class JetStreamConsumer implements DurableConsumer {
  private stopped = false;
  private readonly buffer: JsMsg[] = [];
  private inFlight: JsMsg[] = [];
  /** When each held message was delivered or last marked in progress. */
  private readonly touched = new WeakMap<JsMsg, number>();
  private readonly arrived = new Signal();
  private readonly stopping = new Signal();
  private readonly keepAlive: NodeJS.Timeout;
  private readonly done: Promise<void>;

  constructor(
    private readonly js: JetStreamClient,
    private readonly log: JetStreamLogOptions,
    private readonly handler: (batch: RoomMessage[]) => Promise<void>,
    private readonly options: ConsumeOptions,
    onStopped: () => void,
  ) {
    // Held messages (in flight or buffered) are kept "in progress" so they are not redelivered elsewhere
    // while this writer lives: the ack wait can then be short, and a killed writer's messages come back
    // soon. Only messages not touched for a period get one (a message is seldom held that long), so a
    // message goes at most ~ackWait/2 without one.
    const period = keepAlivePeriod(log);
    this.keepAlive = setInterval(() => {
      const now = Date.now();
      for (const list of [this.inFlight, this.buffer]) {
        for (const m of list) {
          if (now - (this.touched.get(m) ?? 0) < period) continue;
          m.working();
          this.touched.set(m, now);
        }
      }
    }, period);
    this.keepAlive.unref();
    this.done = this.run()
      .catch((error: unknown) => this.log.onRetry?.(error, 0, 0))
      .finally(() => {
        clearInterval(this.keepAlive);
        onStopped();
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.arrived.wake();
    this.stopping.wake();
    await this.done;
  }

  private async run(): Promise<void> {
    const { maxBatch, maxWaitMs } = this.options;
    const messages = await this.attach();
    if (messages === undefined) return;
    try {
      while (!this.stopped) {
        if (this.buffer.length === 0) {
          await this.arrived.wait();
          continue;
        }
        const deadline = Date.now() + maxWaitMs;
        while (!this.stopped && this.buffer.length < maxBatch && Date.now() < deadline) await this.arrived.wait(deadline - Date.now());
        if (this.stopped) return;
        this.inFlight = this.buffer.splice(0, maxBatch);
        const batch: RoomMessage[] = [];
        const kept: JsMsg[] = [];
        for (const m of this.inFlight) {
          try {
            batch.push(m.json<RoomMessage>());
            kept.push(m);
          } catch (err) {
            this.log.onPoison?.(err, m.subject);
            m.term();
          }
        }
        if (!(await this.deliver(batch))) return;
        for (const m of kept) m.ack();
        this.inFlight = [];
      }
    } finally {
      const unhandled = [...this.inFlight, ...this.buffer.splice(0)];
      this.inFlight = [];
      messages.stop();
      // Given back at once rather than after ack_wait, so the next consumer gets them now.
      for (const m of unhandled) m.nak();
    }
  }

  /**
   * Starts pulling from the durable consumer, retrying with backoff (told to `onRetry`) while NATS or
   * the consumer is unavailable, e.g. during a reconnect or a JetStream leader election right after
   * start-up. Resolves undefined once stopped.
   */
  private async attach(): Promise<ConsumerMessages | undefined> {
    let delay = this.options.retryMs;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const consumer = await this.js.consumers.get(this.log.stream, this.log.consumer);
        if (this.stopped) return undefined;
        const messages = await consumer.consume({
          max_messages: Math.min(this.log.maxAckPending, Math.max(1024, this.options.maxBatch * 4)),
          expires: pullTimeout(this.log),
          callback: (m) => {
            this.touched.set(m, Date.now());
            this.buffer.push(m);
            this.arrived.wake();
          },
        });
        if (!this.stopped) return messages;
        messages.stop();
        return undefined;
      } catch (error) {
        this.log.onRetry?.(error, attempt, delay);
        await this.stopping.wait(delay);
        delay = Math.min(delay * 2, this.options.maxRetryMs);
      }
    }
    return undefined;
  }

  /** Hands the batch over until it succeeds (true) or the consumer stops (false). */
  private async deliver(batch: RoomMessage[]): Promise<boolean> {
    if (batch.length === 0) return true;
    let delay = this.options.retryMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.handler([...batch]);
        return true;
      } catch (error) {
        if (this.stopped) return false;
        this.log.onRetry?.(error, attempt, delay);
        await this.stopping.wait(delay);
        delay = Math.min(delay * 2, this.options.maxRetryMs);
        if (this.stopped) return false;
      }
    }
  }
}
