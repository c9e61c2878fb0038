/**
 * One place that turns configuration into ioredis clients. The URL carries password and database
 * (`redis://:password@host:6379/0`, `rediss://` for TLS); TLS files pass through. A Sentinel address
 * (`redis+sentinel://[:password@]host:port,host:port/master-name[?db=0&sentinelPassword=…]`) makes a client
 * that asks the sentinels for the master and follows failovers (ioredis's own Sentinel support). Clients retry
 * forever with capped backoff and queue commands while reconnecting only up to `maxRetriesPerRequest`, so a
 * Redis outage (or a failover in progress) turns into errors the caller can report rather than unbounded waits.
 */
import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConnectionError } from './errors.js';
import { CLUSTER_SCHEME, parseClusterUrl, parseSentinelUrl, redactRedisAddress, SENTINEL_SCHEME } from './redis-url.js';

export { parseClusterUrl, parseSentinelUrl } from './redis-url.js';

/** A client of one Redis (directly or through its sentinels) or of a Redis Cluster: the engines use either. */
export type RedisClient = Redis | Cluster;

export interface RedisConnectOptions {
  url: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Prefix of every key (default "sb:"). */
  keyPrefix?: string;
  /** Give up connecting at start-up after this long (ms). */
  connectTimeoutMs?: number;
}

export function redisOptions(o: RedisConnectOptions): RedisOptions {
  const opts: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    connectTimeout: o.connectTimeoutMs ?? 5_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
  if (o.password !== undefined) opts.password = o.password;
  if (o.tls !== undefined || o.url.startsWith('rediss://')) {
    opts.tls = {
      ...(o.tls?.caFile !== undefined ? { ca: readFileSync(o.tls.caFile) } : {}),
      ...(o.tls?.certFile !== undefined ? { cert: readFileSync(o.tls.certFile) } : {}),
      ...(o.tls?.keyFile !== undefined ? { key: readFileSync(o.tls.keyFile) } : {}),
    };
  }
  return opts;
}

/** The ioredis client for a URL: a direct connection, one through the sentinels, or a Cluster client. */
function createClient(o: RedisConnectOptions): RedisClient {
  if (o.url.startsWith(CLUSTER_SCHEME)) return createCluster(o);
  if (!o.url.startsWith(SENTINEL_SCHEME)) return new Redis(o.url, redisOptions(o));
  const address = parseSentinelUrl(o.url);
  const opts = redisOptions(o);
  return new Redis({
    ...opts,
    sentinels: address.sentinels,
    name: address.name,
    ...(address.username !== undefined ? { username: address.username } : {}),
    ...(address.password !== undefined ? { password: address.password } : {}),
    ...(address.sentinelPassword !== undefined ? { sentinelPassword: address.sentinelPassword } : {}),
    ...(address.db !== undefined ? { db: address.db } : {}),
    // Ask the sentinels again while none answers or the master they name is down (a failover in progress).
    sentinelRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    // Subscribe to the sentinels' +switch-master, so a promotion is followed at once rather than at the next error.
    failoverDetector: true,
    // A demoted master answers writes with READONLY: reconnect (to the master the sentinels name) and resend.
    // The command was refused, not run, so resending cannot apply it twice.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  });
}

/**
 * A Redis Cluster client: it learns the slots from any of the given nodes, sends each command to the master
 * of its key's slot (a room's keys share one hash tag, so every script runs on one shard) and follows
 * MOVED/ASK redirections and slot changes after a failover.
 */
function createCluster(o: RedisConnectOptions): Cluster {
  const address = parseClusterUrl(o.url);
  const { lazyConnect: _lazy, ...perNode } = redisOptions(o);
  const backoff = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2_000);
  return new Cluster(address.nodes, {
    lazyConnect: true,
    enableOfflineQueue: true,
    clusterRetryStrategy: backoff,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: o.connectTimeoutMs ?? 5_000,
    redisOptions: {
      ...perNode,
      ...(address.username !== undefined ? { username: address.username } : {}),
      ...(address.password !== undefined ? { password: address.password } : {}),
    },
  });
}

/** A connected client (rejects with a clear error if Redis is unreachable at start). */
export async function openRedis(o: RedisConnectOptions, role: string): Promise<RedisClient> {
  let client: RedisClient;
  try {
    client = createClient(o);
  } catch (err) {
    throw new ConnectionError('redis', 'invalid', `redis (${role}): unusable address ${redactRedisAddress(o.url)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  client.on('error', () => undefined); // surfaced through command failures and health(), not crashes
  const limitMs = o.connectTimeoutMs ?? 5_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    // A Cluster client retries its startup nodes forever: bound the start like a single connection's.
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not ready within ${limitMs} ms`)), limitMs + 1_000);
      }),
    ]);
  } catch (err) {
    client.disconnect();
    throw new ConnectionError('redis', 'unavailable', `redis (${role}) unreachable at ${redactRedisAddress(o.url)}: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  return client;
}
