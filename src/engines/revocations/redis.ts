/**
 * RedisRevocationStore: the cluster RevocationStore. Every node opens its own instance on the same Redis.
 *
 * Keys (prefix `P`, default "sb:"; one hash tag, so a Redis Cluster keeps them on one shard):
 * - `P{revocations}:all` hash revocationKey → `before:until` (ms)
 * - `P{revocations}:v`   a counter, incremented by every revoke
 * `revoke` merges into the hash and increments the counter in one script. Each instance polls the counter every
 * `pollMs` (one GET) and reloads the hash when it moved, so a revocation reaches every node within about
 * `pollMs`; expired entries are dropped from the hash by the reload that finds them. While Redis is unreachable
 * `revoke` rejects and `isRevoked` answers from the last copy.
 */
import { openRedis, type RedisClient, type RedisConnectOptions } from '../../connections/redis.js';
import { EngineError } from '../errors.js';
import { RevocationSet, revocationKey, type Revocation, type RevocationStore, type TokenRef } from './revocations.js';

const REVOKE = 'sbRevoke';
const REVOKE_LUA = String.raw`
local old = redis.call('HGET', KEYS[1], ARGV[1])
local before, untilMs = tonumber(ARGV[2]), tonumber(ARGV[3])
if old then
  local b, u = string.match(old, '^(%d+):(%d+)$')
  before = math.max(before, tonumber(b) or 0)
  untilMs = math.max(untilMs, tonumber(u) or 0)
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d', before, untilMs))
return redis.call('INCR', KEYS[2])
`;

export interface RedisRevocationOptions {
  /** How often the instance checks for new revocations, ms. Default 250. */
  pollMs: number;
}

export class RedisRevocationStore implements RevocationStore {
  readonly kind = 'redis';
  private readonly set = new RevocationSet();
  private readonly all: string;
  private readonly version: string;
  private seen: string | null = null;
  private readonly timer: NodeJS.Timeout;
  private polling: Promise<void> | null = null;
  private lastError: string | undefined;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    options: Partial<RedisRevocationOptions> = {},
    keyPrefix = 'sb:',
  ) {
    if (/[{}]/.test(keyPrefix)) throw new EngineError('revocations', 'invalid', `redis key prefix "${keyPrefix}" must not contain { or }`);
    this.all = `${keyPrefix}{revocations}:all`;
    this.version = `${keyPrefix}{revocations}:v`;
    client.defineCommand(REVOKE, { numberOfKeys: 2, lua: REVOKE_LUA });
    this.timer = setInterval(() => void this.poll(), options.pollMs ?? 250);
    this.timer.unref();
  }

  /** Loads every revocation in force (called once by `openRedisRevocations` before the store is used). */
  poll(): Promise<void> {
    this.polling ??= this.reload().finally(() => (this.polling = null));
    return this.polling;
  }

  async revoke(r: Revocation): Promise<void> {
    if (this.closed) throw new EngineError('revocations', 'closed', 'revocation store is closed');
    const key = revocationKey(r);
    const before = r.kind === 'user' ? r.before : 0;
    try {
      const fn = (this.client as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>)[REVOKE]!;
      await fn.call(this.client, this.all, this.version, key, Math.floor(before), Math.floor(r.until));
    } catch (err) {
      throw new EngineError('revocations', 'unavailable', `redis: cannot store the revocation: ${(err as Error).message}`, { cause: err });
    }
    this.set.add(key, before, r.until);
  }

  isRevoked(t: TokenRef): boolean {
    return this.set.matches(t);
  }

  active(): boolean {
    return this.set.size > 0 && this.set.prune();
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'closed' };
    return this.lastError === undefined ? { ok: true } : { ok: false, detail: this.lastError };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.polling?.catch(() => undefined);
    this.client.disconnect();
  }

  private async reload(): Promise<void> {
    if (this.closed) return;
    try {
      const v = await this.client.get(this.version);
      if (v === this.seen) return;
      const entries = await this.client.hgetall(this.all);
      const now = Date.now();
      const expired: string[] = [];
      this.set.clear();
      for (const [key, value] of Object.entries(entries)) {
        const m = /^(\d+):(\d+)$/.exec(value);
        if (m === null || Number(m[2]) <= now) expired.push(key);
        else this.set.add(key, Number(m[1]), Number(m[2]));
      }
      if (expired.length > 0) await this.client.hdel(this.all, ...expired);
      this.seen = v;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = `redis ${(err as Error).message}`;
    }
  }
}

/** Connects to Redis and returns the store with every revocation in force loaded. */
export async function openRedisRevocations(o: RedisConnectOptions, options: Partial<RedisRevocationOptions> = {}): Promise<RedisRevocationStore> {
  const client = await openRedis(o, 'revocations');
  const store = new RedisRevocationStore(client, options, o.keyPrefix ?? 'sb:');
  await store.poll();
  const h = store.health();
  if (!h.ok) {
    await store.close();
    throw new EngineError('revocations', 'unavailable', `revocations: ${h.detail ?? 'redis unavailable'}`);
  }
  return store;
}
