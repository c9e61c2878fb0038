/**
 * Commands sent together without waiting for each other's replies, on one Redis or on a Redis Cluster. On a
 * single server (direct or through Sentinel) a batch is one pipeline. A Cluster pipeline may only hold keys of
 * one hash slot, so there the batch is split by the hash tag of each command's key (`{…}`; keys of one tag
 * share a slot) into pipelines sent concurrently. Like a pipeline, a batch is not atomic: each command runs
 * by itself, and later ones run even when an earlier one failed. Results come back in queue order; `run`
 * rejects with the first failed command's error.
 */
import { Cluster, type ChainableCommander } from 'ioredis';
import type { RedisClient } from './redis.js';

export class RedisBatch {
  private readonly queued: { key: string; send: (p: ChainableCommander) => void }[] = [];

  constructor(private readonly client: RedisClient) {}

  /** Queues a command on `key` (its first key; it decides the Cluster slot). */
  add(key: string, send: (p: ChainableCommander) => void): this {
    this.queued.push({ key, send });
    return this;
  }

  get size(): number {
    return this.queued.length;
  }

  async run(): Promise<unknown[]> {
    if (!(this.client instanceof Cluster)) return exec(this.client.pipeline(), this.queued);
    const groups = new Map<string, number[]>();
    this.queued.forEach((q, i) => {
      const tag = hashTag(q.key);
      const group = groups.get(tag);
      if (group === undefined) groups.set(tag, [i]);
      else group.push(i);
    });
    const results = new Array<unknown>(this.queued.length);
    const settled = await Promise.allSettled(
      [...groups.values()].map(async (indexes) => {
        const values = await exec(
          this.client.pipeline(),
          indexes.map((i) => this.queued[i]!),
        );
        indexes.forEach((i, k) => (results[i] = values[k]));
      }),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return results;
  }
}

/** The part of a key Redis Cluster hashes: the first non-empty `{…}`, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

async function exec(p: ChainableCommander, commands: readonly { send: (p: ChainableCommander) => void }[]): Promise<unknown[]> {
  for (const c of commands) c.send(p);
  const results = await p.exec();
  if (results === null) throw new Error('redis pipeline was discarded');
  return results.map(([err, value]) => {
    if (err !== null) throw err;
    return value;
  });
}
