/**
 * RedisBackplane: the Backplane over Redis pub/sub (ioredis), the alternative to NATS for comparison.
 *
 * Behaviour (see backplane.ts for the contract this implements):
 * - Two connections per node: a publisher (PUBLISH) and a subscriber in subscriber mode. Payloads travel
 *   as Buffers both ways (`messageBuffer`), so bytes arrive unchanged.
 * - Channel = `keyPrefix` + subject (default prefix "sb:"), so deployments sharing a Redis stay apart.
 * - One Redis SUBSCRIBE per subject however many local subscriptions it has: local subscriptions of a
 *   subject share it, each with its own handler; the UNSUBSCRIBE goes out when the last one leaves.
 *   A message on a channel with no local subscription (left over after a failed UNSUBSCRIBE) triggers
 *   an UNSUBSCRIBE, so interest stays exact.
 * - `subscribe` resolves when Redis has answered the SUBSCRIBE; it rejects at once while the subscriber
 *   connection is down rather than waiting for Redis to come back.
 * - `publish` resolves when Redis has answered the PUBLISH (commands are pipelined, so concurrent
 *   publishes do not wait for each other, and keep their order). It rejects at once while the publisher
 *   is not connected, and a PUBLISH in flight when the connection drops rejects rather than being resent
 *   (a resend could deliver it twice).
 * - After a reconnect ioredis re-subscribes on its own (autoResubscribe); the backplane also re-issues
 *   SUBSCRIBE for every local subject (idempotent in Redis) and reports healthy only once Redis has
 *   answered it, so `health().ok` means subscriptions are live again.
 * - Logs nothing: connection changes go to the optional `onStatus` listener.
 */
import { Cluster } from 'ioredis';
import { openRedis, type RedisClient, type RedisConnectOptions } from '../../connections/redis.js';
import type { Backplane, BackplaneSubscription } from './backplane.js';
import { defaultHandlerErrorListener, type BackplaneHandlerErrorListener, type BackplaneStatusEvent, type BackplaneStatusListener } from './nats.js';
import { EngineError } from '../errors.js';

export interface RedisBackplaneOptions {
  /** Prefix of every channel name (default "sb:", as for keys). */
  keyPrefix?: string;
  /** Connection changes, for the node's log (also settable later as `backplane.onStatus`). */
  onStatus?: BackplaneStatusListener;
  /** Default: `process.emitWarning`, so a buggy handler is visible without crashing the node. */
  onHandlerError?: BackplaneHandlerErrorListener;
  /** How long `close()` waits for QUIT before dropping the connections (ms, default 2,000). */
  quitTimeoutMs?: number;
}

interface LocalSub {
  readonly handler: (payload: Uint8Array) => void;
  active: boolean;
}

/** One Redis channel subscription shared by the local subscriptions of its subject. */
interface Channel {
  readonly name: string;
  readonly locals: Set<LocalSub>;
  /** Settles with the SUBSCRIBE reply. */
  readonly ready: Promise<void>;
}

type Role = 'publisher' | 'subscriber';

/**
 * One gateway node's Redis backplane. It owns both clients: `close()` quits them.
 * Create it with `openRedisBackplane`, or pass two clients opened with `openRedis`.
 */
export class RedisBackplane implements Backplane {
  readonly kind = 'redis';
  /** Receives connection changes; may be set after construction (e.g. once the node has a logger). */
  onStatus: BackplaneStatusListener | undefined;
  private readonly prefix: string;
  private readonly onHandlerError: BackplaneHandlerErrorListener;
  private readonly quitTimeoutMs: number;
  private readonly channels = new Map<string, Channel>();
  /** Stray channels an UNSUBSCRIBE is already on its way for. */
  private readonly strays = new Set<string>();
  /** Set while the subscriber is connected again but Redis has not yet confirmed the resubscription. */
  private restoring: string | undefined;
  private restoreAttempt = 0;
  /** Per connection: false while up, else how far its outage has been reported. */
  private readonly down: Record<Role, false | 'down' | 'reconnecting'> = { publisher: false, subscriber: false };
  private readonly lastError: Record<Role, string | undefined> = { publisher: undefined, subscriber: undefined };
  private closed = false;

  constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    options: RedisBackplaneOptions = {},
  ) {
    this.prefix = options.keyPrefix ?? 'sb:';
    this.onStatus = options.onStatus;
    this.onHandlerError = options.onHandlerError ?? defaultHandlerErrorListener('redis');
    this.quitTimeoutMs = options.quitTimeoutMs ?? 2_000;
    // A PUBLISH whose reply was lost in a disconnect may have been executed: never send it again.
    if (pub instanceof Cluster) {
      // Each shard's connection has its own options, from redisOptions when it is created.
      pub.options.redisOptions = { ...pub.options.redisOptions, autoResendUnfulfilledCommands: false };
      for (const node of pub.nodes()) node.options.autoResendUnfulfilledCommands = false;
    } else pub.options.autoResendUnfulfilledCommands = false;
    this.watch(pub, 'publisher');
    this.watch(sub, 'subscriber');
    sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.dispatch(channel.toString('utf8'), message));
  }

  async publish(subject: string, payload: Uint8Array): Promise<void> {
    if (this.closed) throw new EngineError('backplane', 'closed', 'redis backplane publish: backplane is closed');
    if (this.pub.status !== 'ready')
      throw new EngineError('backplane', 'unavailable', `redis backplane publish: not connected to Redis (publisher ${this.pub.status})`);
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    try {
      await this.publisher().publish(this.prefix + subject, bytes);
    } catch (err) {
      throw new EngineError('backplane', 'unavailable', `redis backplane publish to "${subject}" failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Where PUBLISH goes. A Cluster client sends a keyless command to any master, and PUBLISH reaches the other
   * shards' subscribers over the cluster bus: two publishes through two masters can arrive in either order.
   * So on a Cluster every publish of this node goes through one master (the first by address that is connected
   * or connecting; a node connection opens on its first command and queues commands meanwhile, in order), whose
   * bus links keep its order; another is chosen only when that one is down.
   */
  private publisher(): { publish(channel: string, message: Buffer): Promise<number> } {
    if (!(this.pub instanceof Cluster)) return this.pub;
    const usable = new Set(['ready', 'wait', 'connect', 'connecting']);
    const masters = this.pub
      .nodes('master')
      .filter((n) => usable.has(n.status))
      .sort((a, b) => (addressOf(a) < addressOf(b) ? -1 : 1));
    const first = masters[0];
    if (first === undefined) throw new Error('no Redis Cluster master is reachable');
    return first;
  }

  async subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<BackplaneSubscription> {
    if (this.closed) throw new EngineError('backplane', 'closed', 'redis backplane subscribe: backplane is closed');
    if (this.sub.status !== 'ready') {
      throw new EngineError('backplane', 'unavailable', `redis backplane subscribe: not connected to Redis (subscriber ${this.sub.status})`);
    }
    let channel = this.channels.get(subject);
    if (channel === undefined) channel = this.openChannel(subject);
    const local: LocalSub = { handler, active: true };
    channel.locals.add(local);
    try {
      await channel.ready;
    } catch (err) {
      local.active = false;
      channel.locals.delete(local);
      throw new EngineError('backplane', 'unavailable', `redis backplane subscribe to "${subject}" failed: ${(err as Error).message}`, { cause: err });
    }
    return { subject, unsubscribe: async () => this.leave(subject, channel, local) };
  }

  health(): { ok: boolean; detail?: string } {
    if (this.closed) return { ok: false, detail: 'redis: closed' };
    const { pub, sub } = this;
    if (pub.status !== 'ready' || sub.status !== 'ready') {
      const why = [this.lastError.publisher, this.lastError.subscriber].filter((e) => e !== undefined);
      const last = why.length > 0 ? ` (last error: ${why.join('; ')})` : '';
      return { ok: false, detail: `redis: publisher ${pub.status}, subscriber ${sub.status}${last}` };
    }
    if (this.restoring !== undefined) return { ok: false, detail: `redis: ${this.restoring}` };
    return { ok: true };
  }

  /** Stops delivery, then QUITs both connections (bounded by `quitTimeoutMs`). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const channel of this.channels.values()) for (const local of channel.locals) local.active = false;
    this.channels.clear();
    await Promise.all([this.quit(this.pub), this.quit(this.sub)]);
    this.emit({ type: 'closed', detail: 'closed' });
  }

  private openChannel(subject: string): Channel {
    const name = this.prefix + subject;
    const channel: Channel = {
      name,
      locals: new Set(),
      ready: this.sub.subscribe(name).then(
        () => undefined,
        (err: unknown) => {
          // A later subscribe to the subject starts afresh instead of sharing the failure.
          if (this.channels.get(subject) === channel) this.channels.delete(subject);
          throw err;
        },
      ),
    };
    channel.ready.catch(() => undefined); // the subscribers awaiting it report the failure
    this.channels.set(subject, channel);
    return channel;
  }

  private async leave(subject: string, channel: Channel, local: LocalSub): Promise<void> {
    if (!local.active) return;
    local.active = false;
    channel.locals.delete(local);
    if (channel.locals.size > 0 || this.channels.get(subject) !== channel) return;
    this.channels.delete(subject);
    if (this.closed) return;
    // Not awaited: delivery has already stopped locally; a failure is reported and healed (see dispatch).
    this.sub.unsubscribe(channel.name).catch((err: unknown) => {
      this.emit({ type: 'error', detail: `UNSUBSCRIBE ${channel.name} failed: ${(err as Error).message}`, error: err as Error });
    });
  }

  private dispatch(name: string, message: Buffer): void {
    if (this.closed || !name.startsWith(this.prefix)) return;
    const channel = this.channels.get(name.slice(this.prefix.length));
    if (channel === undefined) {
      this.unsubscribeStray(name);
      return;
    }
    // A snapshot: a subscription added by a handler does not get this (earlier) message.
    for (const local of Array.from(channel.locals)) {
      if (!local.active) continue;
      try {
        local.handler(message);
      } catch (error) {
        this.onHandlerError(error, name.slice(this.prefix.length));
      }
    }
  }

  private unsubscribeStray(name: string): void {
    if (this.strays.has(name) || this.sub.status !== 'ready') return;
    this.strays.add(name);
    this.sub
      .unsubscribe(name)
      .catch(() => undefined) // retried on the next stray message
      .finally(() => this.strays.delete(name));
  }

  /** Tracks one client's connection for health() and onStatus, and restores subscriptions on reconnect. */
  private watch(client: RedisClient, role: Role): void {
    client.on('error', (err: Error) => {
      if (this.closed || this.lastError[role] === err.message) return;
      this.lastError[role] = err.message;
      this.emit({ type: 'error', detail: `${role}: ${err.message}`, error: err });
    });
    client.on('close', () => {
      if (this.closed || this.down[role] !== false) return;
      this.down[role] = 'down';
      this.emit({ type: 'disconnected', detail: `${role} lost its connection to Redis` });
    });
    client.on('reconnecting', () => {
      // ioredis emits this before every attempt; reported once per outage.
      if (this.closed || this.down[role] === 'reconnecting') return;
      this.down[role] = 'reconnecting';
      this.emit({ type: 'reconnecting', detail: `${role} reconnecting to Redis` });
    });
    client.on('ready', () => {
      if (this.closed) return;
      this.down[role] = false;
      this.lastError[role] = undefined;
      if (role === 'subscriber') this.resubscribe();
      else this.emit({ type: 'reconnected', detail: 'publisher reconnected to Redis' });
    });
  }

  /**
   * Re-issues SUBSCRIBE for every local subject after the subscriber reconnected (ioredis does the same;
   * repeating it is harmless and covers a reconnect that drops ioredis's own resubscription).
   */
  private resubscribe(): void {
    const names = Array.from(this.channels.values(), (c) => c.name);
    const attempt = ++this.restoreAttempt;
    if (names.length === 0) {
      this.restoring = undefined;
      this.emit({ type: 'reconnected', detail: 'subscriber reconnected to Redis' });
      return;
    }
    this.restoring = `subscriber reconnected, restoring ${names.length} subscription(s)`;
    this.sub.subscribe(...names).then(
      () => {
        if (attempt !== this.restoreAttempt || this.closed) return;
        this.restoring = undefined;
        this.emit({ type: 'reconnected', detail: `subscriber reconnected to Redis; ${names.length} subscription(s) restored` });
      },
      (err: unknown) => {
        // The connection dropped again; the next 'ready' retries.
        this.emit({ type: 'error', detail: `restoring subscriptions failed: ${(err as Error).message}`, error: err as Error });
      },
    );
  }

  private async quit(client: RedisClient): Promise<void> {
    if (client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.quitTimeoutMs);
      });
      await Promise.race([
        client.quit().then(
          () => undefined,
          () => undefined,
        ),
        timeout,
      ]);
      clearTimeout(timer);
    }
    client.disconnect();
  }

  private emit(e: Omit<BackplaneStatusEvent, 'backplane'>): void {
    const listener = this.onStatus;
    if (listener === undefined) return;
    try {
      listener({ backplane: 'redis', ...e });
    } catch (err) {
      process.emitWarning(`backplane status listener threw: ${(err as Error).message}`, 'SwitchboardBackplaneWarning');
    }
  }
}

/**
 * Opens the publisher and subscriber connections and returns the node's backplane. Rejects with an
 * error naming Redis and its address if it cannot be reached at start.
 */
export async function openRedisBackplane(o: RedisConnectOptions & RedisBackplaneOptions): Promise<RedisBackplane> {
  const pub = await openRedis(o, 'backplane publisher');
  let sub: RedisClient;
  try {
    sub = await openRedis(o, 'backplane subscriber');
  } catch (err) {
    pub.disconnect();
    throw err;
  }
  return new RedisBackplane(pub, sub, o);
}

function addressOf(node: { options: { host?: string | undefined; port?: number | undefined } }): string {
  return `${node.options.host ?? ''}:${String(node.options.port ?? 0).padStart(5, '0')}`;
}
