/**
 * One place that turns configuration into ioredis clients. The URL carries password and database
 * (`redis://:password@host:6379/0`, `rediss://` for TLS); TLS files pass through. Clients retry forever
 * with capped backoff and queue commands while reconnecting only up to `maxRetriesPerRequest`, so a
 * Redis outage turns into errors the caller can report rather than unbounded waits.
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

/** A connected client (rejects with a clear error if Redis is unreachable at start). */
export async function openRedis(o: RedisConnectOptions, role: string): Promise<Redis> {
  const client = new Redis(o.url, redisOptions(o));
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
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparsable URL]';
  }
}
