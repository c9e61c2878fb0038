/**
 * The cluster engine set, chosen by flags: NATS (or Redis pub/sub) backplane, Redis presence and RoomLog,
 * PostgreSQL history. Until the durable-history issue brings JetStream, the durable log is the node's
 * in-process queue whose appends resolve when the node's history writer has committed them to
 * PostgreSQL, so acked still means stored. Each service that cannot be reached fails start-up with an
 * error naming it.
 */
import type { Config } from '../config/schema.js';
import { openNatsBackplane } from './backplane/nats.js';
import { openRedisBackplane } from './backplane/redis.js';
import type { Backplane } from './backplane/backplane.js';
import type { NatsConnectOptions } from './connections/nats.js';
import type { RedisConnectOptions } from './connections/redis.js';
import { MemoryDurableLog } from './durablelog/memory.js';
import type { Engines } from './engines.js';
import type { MessageStore } from './messagestore/messagestore.js';
import { openPostgresStore } from './messagestore/postgres.js';
import { openRedisPresence } from './presence/redis.js';
import { openRedisRoomLog } from './roomlog/redis.js';

export function isClustered(c: Config): boolean {
  return c.nats !== undefined || c.redis !== undefined || c.database !== undefined;
}

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

export async function openClusterEngines(c: Config, nodeId: string): Promise<Engines> {
  const opened: { close(): Promise<void> }[] = [];
  try {
    const store: MessageStore = await openPostgresStore(c.database!);
    opened.push(store);
    const redis = redisConnectOptions(c);
    const backplane: Backplane =
      (c.backplane ?? (c.nats !== undefined ? 'nats' : 'redis')) === 'nats'
        ? await openNatsBackplane(natsOptions(c, `switchboard ${nodeId}`))
        : await openRedisBackplane(redis);
    opened.push(backplane);
    const presence = await openRedisPresence(redis, { ttlMs: c.presenceTtlMs });
    opened.push(presence);
    const roomLog = await openRedisRoomLog(redis, {
      windowSize: c.recoveryWindow,
      windowMs: c.recoveryWindowMs,
      idemMs: c.idempotencyMs,
      seed: (ref) => store.position(ref),
    });
    return { backplane, presence, roomLog, durableLog: new MemoryDurableLog(), store };
  } catch (err) {
    await Promise.allSettled(opened.map((o) => o.close()));
    throw err;
  }
}
