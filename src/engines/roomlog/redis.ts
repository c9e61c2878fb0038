import { openRedis, type RedisClient, type RedisConnectOptions } from '../../connections/redis.js';
import type { RoomMessage, RoomPosition, RoomRef } from '../types.js';
import { newEpoch } from './memory.js';
import { RoomFences } from './fence.js';
import { APPEND_LUA, FENCE_LUA, READ_LUA, REFUSED_LUA } from './redis-lua.js';
import { defaultRoomLogOptions, type AppendResult, type PublishInput, type RecoveryResult, type RoomLog, type RoomLogOptions } from './roomlog.js';
import { EngineError } from '../errors.js';

export interface RedisRoomLogOptions extends RoomLogOptions {
  /** At most this many idempotency ids are remembered per room (oldest forgotten first). Default 10 × windowSize. */
  idemMax: number;
}

type ScriptArg = string | number;
type ScriptFn = (...args: ScriptArg[]) => Promise<unknown>;

const APPEND = 'sbRoomLogAppend';
const READ = 'sbRoomLogRead';
const FENCE = 'sbRoomLogFence';
const REFUSED = 'sbRoomLogRefused';

/**
 * RedisRoomLog: the cluster RoomLog. Every node opens its own instance on the same Redis; all
 * per-room state lives in Redis and every operation is one Lua script (EVALSHA), so appends from any
 * number of nodes are atomic per room and their seqs gap-free.
 *
 * Key layout (prefix `P` = RedisConnectOptions.keyPrefix, default "sb:"; one hash tag per room so a
 * Redis Cluster keeps a room in one slot):
 * - `P{tenant/room}:meta`  hash `seq`, `epoch`, `ts` (last seq, its epoch, last ts). Never expires: losing
 *   it would restart the sequence. A few dozen bytes per room ever used.
 * - `P{tenant/room}:win`   list of message JSON, oldest first, consecutive seqs ending at meta.seq;
 *   trimmed to `windowSize` entries and `windowMs` age on every append and read, and expires `windowMs`
 *   after the last append (every entry is then too old anyway).
 * - `P{tenant/room}:idem`  hash `${from}\0${idem}` → the first message JSON, and `P{tenant/room}:idemq`,
 *   a sorted set of the same fields by time of first use: ids older than `idemMs` or beyond `idemMax` are
 *   dropped on append; both keys expire `idemMs` after the last append with an idempotency id.
 *
 * `ts` is Redis `TIME` in ms, clamped to be non-decreasing in seq order, so it is one clock for every
 * node. Messages are built by concatenating JSON pieces (see redis-lua.ts): `data` is encoded once here
 * with JSON.stringify and stored as those bytes; `event`, when given, precedes it in the tail (after `ts`).
 *
 * A room without `meta` (never used, or Redis lost its data) starts from `seed(ref)` if configured — a
 * seed call per room at a time per instance, and the position is only written if `meta` is still
 * missing, so racing nodes agree — else at seq 0 under a freshly minted random epoch. Reads of an
 * unknown room (`position`, `since`) create its state the same way, so the epoch they report is the one
 * later appends use; `range` of an unknown room is empty and creates nothing.
 *
 * Fencing (`options.fence`, given by engines/cluster.ts): Redis replicates asynchronously, so a replica promoted by
 * Sentinel or a Cluster failover can lack a room's last increments, and would hand out seqs that acked messages
 * hold. So a room's first append after the client (re)connects (`ready`, and a Cluster's `+node`/`-node`), and
 * the first after the fence's TTL, first compares the room's seq with the durable log's newest message of the
 * room and moves it up when it is below (fence.ts), restoring the idempotency ids and window of the messages in
 * between. An append that slips in before the client reports the reconnect is refused by the durable log
 * (`conflict`, within its duplicate window) and `refused` then forgets it and fences the room again.
 *
 * While Redis is unreachable every operation rejects (after the client's bounded retries); nothing is
 * cached locally, so the log is consistent again as soon as Redis is back.
 */
export class RedisRoomLog implements RoomLog {
  readonly kind = 'redis';
  private readonly options: RedisRoomLogOptions;
  private readonly prefix: string;
  private readonly append_: ScriptFn;
  private readonly read_: ScriptFn;
  private readonly seeding = new Map<string, Promise<RoomPosition>>();
  private readonly fences: RoomFences | undefined;
  private readonly refused_: ScriptFn | undefined;
  private closed = false;

  constructor(
    private readonly client: RedisClient,
    options: Partial<RedisRoomLogOptions> = {},
    keyPrefix = 'sb:',
  ) {
    const base = { ...defaultRoomLogOptions, ...options };
    this.options = { ...base, idemMax: options.idemMax ?? 10 * base.windowSize };
    if (/[{}]/.test(keyPrefix)) throw new EngineError('roomlog', 'invalid', `redis key prefix "${keyPrefix}" must not contain { or }`);
    this.prefix = keyPrefix;
    client.defineCommand(APPEND, { numberOfKeys: 4, lua: APPEND_LUA });
    client.defineCommand(READ, { numberOfKeys: 4, lua: READ_LUA });
    this.append_ = scriptOf(client, APPEND);
    this.read_ = scriptOf(client, READ);
    if (options.fence !== undefined) {
      client.defineCommand(FENCE, { numberOfKeys: 4, lua: FENCE_LUA });
      client.defineCommand(REFUSED, { numberOfKeys: 4, lua: REFUSED_LUA });
      const fence = scriptOf(client, FENCE);
      this.refused_ = scriptOf(client, REFUSED);
      const { windowSize, windowMs, idemMs } = this.options;
      const fences = new RoomFences(
        options.fence,
        async (ref, floor, entries) => {
          const triples = (entries ?? []).flatMap((m) => [m.seq, m.idem === undefined ? '' : `${m.from}\u0000${m.idem}`, windowEntry(m)]);
          const mode = entries === undefined ? 'probe' : 'apply';
          const [code, cur] = (await fence(...this.keys(ref), floor.seq, floor.epoch, floor.ts, windowSize, windowMs, idemMs, mode, ...triples)) as [
            number,
            number,
          ];
          return { cur: Number(cur), behind: code !== 0 };
        },
        Math.max(windowSize, 100),
      );
      this.fences = fences;
      // A reconnect may have reached another server (Sentinel: the promoted replica; Cluster: a shard's new master).
      for (const event of ['ready', '+node', '-node']) client.on(event, () => fences.reconnected());
    }
  }

  async append(ref: RoomRef, input: PublishInput): Promise<AppendResult> {
    this.ensureOpen();
    const { windowSize, windowMs, idemMs, idemMax } = this.options;
    const head = `{"tenant":${JSON.stringify(ref.tenant)},"room":${JSON.stringify(ref.room)},"seq":`;
    const mid = `,"from":${JSON.stringify(input.from)},"ts":`;
    const data = JSON.stringify(input.data) ?? 'null';
    const event =
      (input.event === undefined ? '' : `,"event":${JSON.stringify(input.event)}`) + (input.key === undefined ? '' : `,"key":${JSON.stringify(input.key)}`);
    const tail = input.idem === undefined ? `${event},"data":${data}}` : `${event},"data":${data},"idem":${JSON.stringify(input.idem)}}`;
    const field = input.idem === undefined ? '' : `${input.from}\u0000${input.idem}`;
    const fencing = this.fences?.check(ref);
    if (fencing !== undefined) await fencing;
    let init = this.options.seed === undefined ? fresh() : undefined;
    for (;;) {
      const reply = await this.append_(
        ...this.keys(ref),
        head,
        mid,
        tail,
        field,
        windowSize,
        windowMs,
        idemMs,
        idemMax,
        init?.seq ?? '',
        init?.epoch ?? '',
        input.maxPerSecond ?? 0,
      );
      const [code, json] = reply as [number, string?];
      if (code === 3) throw new EngineError('roomlog', 'full', `room ${ref.room} accepts ${input.maxPerSecond} publishes a second; retry later`);
      if (code !== 2 && json !== undefined) return { message: JSON.parse(json) as RoomMessage, duplicate: code === 1 };
      if (init !== undefined) throw new EngineError('roomlog', 'invalid', `room log: unexpected reply from redis for ${ref.tenant}/${ref.room}`);
      init = await this.seedPosition(ref);
    }
  }

  async refused(message: RoomMessage): Promise<void> {
    this.ensureOpen();
    const ref = { tenant: message.tenant, room: message.room };
    this.fences?.forget(ref, message.seq);
    if (this.refused_ === undefined) return;
    await this.refused_(...this.keys(ref), message.seq, message.idem === undefined ? '' : `${message.from}\u0000${message.idem}`);
  }

  async since(ref: RoomRef, seq: number, epoch: string): Promise<RecoveryResult> {
    const read = await this.read(ref, seq + 1, Number.MAX_SAFE_INTEGER, true);
    const { position, first, messages } = read!;
    if (epoch !== position.epoch) return { messages, position, complete: false };
    if (seq >= position.seq) return { messages: [], position, complete: true };
    return { messages, position, complete: messages.length > 0 && first <= seq + 1 };
  }

  async range(ref: RoomRef, from: number, to: number): Promise<RoomMessage[]> {
    return (await this.read(ref, from, to, false))?.messages ?? [];
  }

  async position(ref: RoomRef): Promise<RoomPosition> {
    return (await this.read(ref, 1, 0, true))!.position;
  }

  /** Connection state, for readiness checks. */
  health(): { ok: boolean; detail?: string } {
    const status = this.client.status;
    return status === 'ready' ? { ok: true } : { ok: false, detail: `redis ${status}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await quit(this.client);
  }

  private ensureOpen(): void {
    if (this.closed) throw new EngineError('roomlog', 'closed', 'room log is closed');
  }

  private keys(ref: RoomRef): [string, string, string, string] {
    const base = `${this.prefix}{${ref.tenant}/${ref.room}}`;
    return [`${base}:meta`, `${base}:win`, `${base}:idem`, `${base}:idemq`];
  }

  /** One atomic read of the room; null for a room without state when `create` is false. */
  private async read(
    ref: RoomRef,
    lo: number,
    hi: number,
    create: boolean,
  ): Promise<{ position: RoomPosition; first: number; messages: RoomMessage[] } | null> {
    this.ensureOpen();
    let init = this.options.seed === undefined ? fresh() : undefined;
    for (;;) {
      const reply = (await this.read_(...this.keys(ref), lo, hi, this.options.windowMs, create ? '1' : '0', init?.seq ?? '', init?.epoch ?? '')) as [
        number,
        ...string[],
      ];
      if (reply[0] === 1) return null;
      if (reply[0] === 0) {
        const [, seq, epoch, first, ...entries] = reply;
        return {
          position: { seq: Number(seq), epoch: epoch! },
          first: Number(first),
          messages: entries.map((e) => JSON.parse(e) as RoomMessage),
        };
      }
      if (init !== undefined) throw new EngineError('roomlog', 'invalid', `room log: unexpected reply from redis for ${ref.tenant}/${ref.room}`);
      init = await this.seedPosition(ref);
    }
  }

  /** Where a room without state starts: the seed's position, or seq 0 under a new epoch. */
  private seedPosition(ref: RoomRef): Promise<RoomPosition> {
    const seed = this.options.seed;
    if (seed === undefined) return Promise.resolve(fresh());
    const key = `${ref.tenant}/${ref.room}`;
    let pending = this.seeding.get(key);
    if (pending === undefined) {
      pending = seed(ref)
        .then((p) => p ?? fresh())
        .finally(() => this.seeding.delete(key));
      this.seeding.set(key, pending);
    }
    return pending;
  }
}

/** A durable message as a window entry: the key order the append script builds (`ts` before `data`, see redis-lua.ts). */
function windowEntry(m: RoomMessage): string {
  const { tenant, room, seq, epoch, from, ts, event, data, idem } = m;
  return JSON.stringify({ tenant, room, seq, epoch, from, ts, ...(event === undefined ? {} : { event }), data, ...(idem === undefined ? {} : { idem }) });
}

function fresh(): RoomPosition {
  return { seq: 0, epoch: newEpoch() };
}

/** A command registered with `defineCommand`, bound to its client. */
function scriptOf(client: RedisClient, name: string): ScriptFn {
  const fn: unknown = (client as unknown as Record<string, unknown>)[name];
  if (typeof fn !== 'function') throw new EngineError('roomlog', 'invalid', `redis script ${name} is not defined`);
  return (...args: ScriptArg[]) => (fn as ScriptFn).apply(client, args);
}

/** Closes a client: QUIT when connected, else drop the socket (QUIT would wait for a reconnect). */
async function quit(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through
    }
  }
  client.disconnect();
}

/**
 * Connects to Redis and returns a RoomLog on it (rejects with a clear error if Redis is unreachable).
 * `options` may also carry `idemMax` (see RedisRoomLogOptions).
 */
export async function openRedisRoomLog(o: RedisConnectOptions, options: Partial<RedisRoomLogOptions>): Promise<RedisRoomLog> {
  const client = await openRedis(o, 'room log');
  try {
    return new RedisRoomLog(client, options, o.keyPrefix ?? 'sb:');
  } catch (err) {
    client.disconnect();
    throw err;
  }
}
