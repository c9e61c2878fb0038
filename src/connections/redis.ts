/**
 * One place that turns configuration into ioredis clients. The URL carries password and database
 * (`redis://:password@host:6379/0`, `rediss://` for TLS); TLS files pass through. A Sentinel address
 * (`redis+sentinel://[:password@]host:port,host:port/master-name[?db=0&sentinelPassword=…]`) makes a client
 * that asks the sentinels for the master and follows failovers (ioredis's own Sentinel support). Clients retry
 * forever with capped backoff and queue commands while reconnecting only up to `maxRetriesPerRequest`, so a
 * Redis outage (or a failover in progress) turns into errors the caller can report rather than unbounded waits.
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ConnectionError } from './errors.js';

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

export interface SentinelAddress {
  sentinels: { host: string; port: number }[];
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  name: string;
  username?: string;
  /** Password of the Redis master and replicas. */
  password?: string;
  /** Password of the sentinels themselves (`requirepass` in sentinel.conf), when set. */
  sentinelPassword?: string;
  db?: number;
}

export const SENTINEL_SCHEME = 'redis+sentinel://';

/** Parses `redis+sentinel://[user:password@]host:port[,host:port…]/master-name[?db=N&sentinelPassword=…]`; throws on anything else. */
export function parseSentinelUrl(url: string): SentinelAddress {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?@]+)\/([^/?]+)\/?(?:\?(.*))?$/.exec(url);
  if (m === null) throw new Error('expected redis+sentinel://[:password@]host:port,host:port/master-name');
  const [, user, pass, hosts, name, query] = m;
  const sentinels = hosts!.split(',').map((h) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(h.trim());
    if (hp === null) throw new Error(`bad sentinel address "${h}" (host:port)`);
    return { host: hp[1]!.replace(/^\[|\]$/g, ''), port: hp[2] !== undefined ? Number(hp[2]) : 26379 };
  });
  const params = new URLSearchParams(query ?? '');
  const address: SentinelAddress = { sentinels, name: decodeURIComponent(name!) };
  if (user !== undefined && user !== '') address.username = decodeURIComponent(user);
  if (pass !== undefined && pass !== '') address.password = decodeURIComponent(pass);
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelPassword !== null && sentinelPassword !== '') address.sentinelPassword = sentinelPassword;
  const db = params.get('db');
  if (db !== null) {
    if (!/^\d+$/.test(db)) throw new Error(`bad db "${db}"`);
    address.db = Number(db);
  }
  for (const key of params.keys()) if (key !== 'db' && key !== 'sentinelPassword') throw new Error(`unknown parameter "${key}" (db, sentinelPassword)`);
  return address;
}

/** The ioredis client for a URL: a direct connection, or one through the sentinels. */
function createClient(o: RedisConnectOptions): Redis {
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

/** A connected client (rejects with a clear error if Redis is unreachable at start). */
export async function openRedis(o: RedisConnectOptions, role: string): Promise<Redis> {
  let client: Redis;
  try {
    client = createClient(o);
  } catch (err) {
    throw new ConnectionError('redis', 'invalid', `redis (${role}): unusable address ${redactHost(o.url)}: ${(err as Error).message}`, { cause: err });
  }
  client.on('error', () => undefined); // surfaced through command failures and health(), not crashes
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new ConnectionError('redis', 'unavailable', `redis (${role}) unreachable at ${redactHost(o.url)}: ${(err as Error).message}`, { cause: err });
  }
  return client;
}

function redactHost(url: string): string {
  if (url.startsWith(SENTINEL_SCHEME)) {
    const m = /^redis\+sentinel:\/\/(?:[^@/]*@)?([^/?@]+)(\/[^/?]*)?/.exec(url);
    return m === null ? '[unparsable URL]' : `${SENTINEL_SCHEME}${m[1]!}${m[2] ?? ''}`;
  }
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparsable URL]';
  }
}
