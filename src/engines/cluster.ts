/**
 * The cluster engine set, chosen by flags: NATS (or Redis pub/sub) backplane, Redis presence and RoomLog,
 * JetStream durable log, PostgreSQL history.
 *
 * - With NATS configured the durable log is JetStream (unless `--durable-log memory`) (its own connection; stream and consumer created or
 *   updated here with the configured replicas and retention). Without NATS (`--backplane redis` only) it
 *   is the node's in-process queue whose appends resolve when the node's history writer has committed them
 *   to PostgreSQL, so acked still means stored.
 * - PostgreSQL is opened in the background (DeferredStore): a node whose database is down starts, serves
 *   live traffic from the durable log, and reports history degraded until the database answers. With the
 *   in-process durable log (no JetStream) nothing else would hold acked messages, so there the database
 *   must be reachable at start-up.
 * - A RoomLog key missing in Redis is seeded from the newest message JetStream holds for the room, else
 *   from PostgreSQL (the higher of the two when both answer).
 * - NATS, JetStream and Redis unreachable at start-up fail it with an error naming the service.
 */
import type { Config } from '../config/schema.js';
import { describeServers, openNatsBackplane } from './backplane/nats.js';
import { openRedisBackplane } from './backplane/redis.js';
import type { Backplane } from './backplane/backplane.js';
import { openNats, type NatsConnectOptions } from '../connections/nats.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { RedisConnectOptions } from '../connections/redis.js';
import type { DurableLog } from './durablelog/durablelog.js';
import { openJetStreamDurableLog, type JetStreamDurableLog } from './durablelog/jetstream.js';
import { MemoryDurableLog } from './durablelog/memory.js';
import { openJetStreamWebhookQueue, type JetStreamWebhookQueue } from './webhookqueue/jetstream.js';
import type { Engines } from './engines.js';
import { DeferredStore } from './messagestore/deferred.js';
import type { MessageStore } from './messagestore/messagestore.js';
import { openPostgresStore } from './messagestore/postgres.js';
import { openRedisPresence } from './presence/redis.js';
import { openRedisRevocations } from './revocations/redis.js';
import { openRedisRoomLog } from './roomlog/redis.js';
import type { FenceSource } from './roomlog/roomlog.js';
import type { RoomMessage, RoomPosition, RoomRef } from './types.js';
import { ConnectionError } from '../connections/errors.js';

export { isClustered } from '../config/schema.js';

export function natsOptions(c: Config, name: string): NatsConnectOptions {
  const tls = c.natsTlsCaFile ?? c.natsTlsCertFile ?? c.natsTlsKeyFile;
  return {
    url: c.nats!,
    name,
    ...(c.natsCredsFile !== undefined ? { credsFile: c.natsCredsFile } : {}),
    ...(tls !== undefined ? { tls: { caFile: c.natsTlsCaFile, certFile: c.natsTlsCertFile, keyFile: c.natsTlsKeyFile } } : {}),
  };
}

export function redisConnectOptions(c: Config): RedisConnectOptions {
  const tls = c.redisTlsCaFile ?? c.redisTlsCertFile ?? c.redisTlsKeyFile;
  return {
    url: c.redis!,
    ...(tls !== undefined ? { tls: { caFile: c.redisTlsCaFile, certFile: c.redisTlsCertFile, keyFile: c.redisTlsKeyFile } } : {}),
  };
}

/**
 * Opens a JetStream-backed engine on a NATS connection of its own (the engine closes it), with errors that name
 * NATS or JetStream (`what`: what JetStream was to hold, for the message).
 */
async function openOnOwnNats<T>(c: Config, name: string, what: string, open: (nc: NatsConnection) => Promise<T>): Promise<T> {
  let nc: NatsConnection;
  try {
    nc = await openNats(natsOptions(c, name));
  } catch (err) {
    throw new ConnectionError('nats', 'unavailable', `NATS unreachable at ${describeServers(c.nats!)}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return await open(nc);
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw new ConnectionError('jetstream', 'unavailable', `jetstream unavailable${what} at ${c.nats!}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The durable log's stream: `SWITCHBOARD` over `sb.d.>`; with `--region`, the region's own stream
 * `SWITCHBOARD_<region>` over `sb.rd.<region>.>`, placed in the region's NATS cluster, holding the rooms homed
 * there (docs/scaling.md "Regions"). Not under `sb.d.` so that it never overlaps a `SWITCHBOARD` stream.
 */
export function durableStream(c: Pick<Config, 'region'>): { stream: string; subjectPrefix: string; placementCluster?: string } {
  if (c.region === undefined) return { stream: 'SWITCHBOARD', subjectPrefix: 'sb.d' };
  return { stream: `SWITCHBOARD_${c.region}`, subjectPrefix: `sb.rd.${c.region}`, placementCluster: c.region };
}

/** Opens JetStream (own connection) with the configured stream limits; the log closes the connection. */
export function openClusterDurableLog(c: Config, name: string): Promise<JetStreamDurableLog> {
  return openOnOwnNats(c, name, '', (nc) =>
    openJetStreamDurableLog(nc, {
      ...durableStream(c),
      replicas: c.jetstreamReplicas,
      maxAgeMs: c.jetstreamMaxAgeMs,
      maxBytes: c.jetstreamMaxBytes,
      ackWaitMs: c.jetstreamAckWaitMs,
      publishTimeoutMs: c.publishTimeoutMs,
      closeConnection: true,
    }),
  );
}

/** The cluster's webhook work queue on JetStream (own connection, closed with the queue). */
export function openClusterWebhookQueue(c: Config, name: string): Promise<JetStreamWebhookQueue> {
  return openOnOwnNats(c, name, ' for webhooks', (nc) =>
    openJetStreamWebhookQueue(nc, {
      replicas: c.jetstreamReplicas,
      ackWaitMs: c.webhookAckWaitMs,
      publishTimeoutMs: c.publishTimeoutMs,
      closeConnection: true,
    }),
  );
}

/** PostgreSQL history opened (and migrated) in the background, retried with backoff until it answers. */
export function openDeferredPostgres(c: Config, onAttemptFailed?: (err: unknown, attempt: number) => void): DeferredStore {
  return new DeferredStore('postgres', () => openPostgresStore(c.database!), onAttemptFailed === undefined ? {} : { onAttemptFailed });
}

/** Told when the RoomLog's fence moved a room's seq up to the durable log's (roomlog.ts `FenceSource.onMoved`). */
export type FenceMoved = (ref: RoomRef, from: number, to: number, restored: number) => void;

export async function openClusterEngines(c: Config, nodeId: string, onFenceMoved?: FenceMoved): Promise<Engines> {
  const opened: { close(): Promise<void> }[] = [];
  try {
    let durableLog: DurableLog;
    let store: MessageStore;
    let jetstream: JetStreamDurableLog | undefined;
    if ((c.durableLog ?? (c.nats !== undefined ? 'jetstream' : 'memory')) === 'jetstream') {
      jetstream = await openClusterDurableLog(c, `switchboard ${nodeId} jetstream`);
      durableLog = jetstream;
      opened.push(durableLog);
      const deferred = openDeferredPostgres(c);
      await deferred.firstAttempt;
      store = deferred;
    } else {
      durableLog = new MemoryDurableLog();
      store = await openPostgresStore(c.database!);
    }
    opened.push(store);
    const redis = redisConnectOptions(c);
    const backplane: Backplane =
      (c.backplane ?? (c.nats !== undefined ? 'nats' : 'redis')) === 'nats'
        ? await openNatsBackplane(natsOptions(c, `switchboard ${nodeId}`))
        : await openRedisBackplane(redis);
    opened.push(backplane);
    const presence = await openRedisPresence(redis, { ttlMs: c.presenceTtlMs });
    opened.push(presence);
    const js = jetstream;
    const seed = async (ref: RoomRef): Promise<RoomPosition | null> => {
      if (js === undefined) return store.position(ref);
      const last = await js.last(ref);
      if (last === null) return store.position(ref);
      const stored = await store.position(ref).catch(() => null);
      return stored !== null && stored.seq > last.seq ? stored : { seq: last.seq, epoch: last.epoch };
    };
    // The durable truth a room's Redis sequence must not fall below (a failover to a lagging replica): JetStream's
    // newest message of the room, else (none there, or no JetStream) the MessageStore's, which then holds every
    // acked message. The messages in between come from both, as history reads them (messaging/history-fill.ts).
    const fence: FenceSource = {
      floor: async (ref) => {
        const last = js === undefined ? null : await js.last(ref);
        if (last !== null) return last;
        const stored = await store.position(ref);
        if (stored === null) return null;
        const page = await store.page(ref, { after: stored.seq - 1, limit: 1 });
        return page.messages[0] ?? null;
      },
      range: async (ref, from, to) => {
        const seqs = Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
        const [pending, stored] = await Promise.all([
          durableLog.uncommitted(ref, seqs).catch(() => []),
          store.page(ref, { after: from - 1, limit: Math.min(1000, Math.max(1, to - from + 1)) }).then(
            (p) => p.messages,
            () => [],
          ),
        ]);
        const bySeq = new Map<number, RoomMessage>();
        for (const m of [...stored, ...pending]) if (m.seq >= from && m.seq <= to) bySeq.set(m.seq, m);
        return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
      },
      ...(onFenceMoved === undefined ? {} : { onMoved: onFenceMoved }),
    };
    const roomLog = await openRedisRoomLog(redis, {
      windowSize: c.recoveryWindow,
      windowMs: c.recoveryWindowMs,
      idemMs: c.idempotencyMs,
      seed,
      fence,
    });
    opened.push(roomLog);
    const revocations = await openRedisRevocations(redis);
    return { backplane, presence, roomLog, durableLog, store, revocations };
  } catch (err) {
    await Promise.allSettled(opened.map((o) => o.close()));
    throw err;
  }
}
