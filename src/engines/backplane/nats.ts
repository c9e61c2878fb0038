/**
 * NatsBackplane: the cluster Backplane over core NATS publish/subscribe (@nats-io/transport-node v3).
 *
 * Behaviour (see backplane.ts for the contract this implements):
 * - Every `subscribe` is one NATS subscription on exactly that subject (no wildcards), made only when
 *   the gateway asks, so a node receives a room's messages only while it has local members there.
 *   `subscribe` resolves after a round trip to the server (`flush`), so the server has the interest.
 * - Handlers get the message bytes as received (`msg.data`, a view of the socket chunk the client read;
 *   never reused, so it may be kept). A throwing handler is reported to `onHandlerError` and delivery
 *   goes on (a throw inside a nats.js callback would otherwise kill the connection's reader loop).
 * - `publish` writes into the client's outbound buffer at once (the message leaves immediately; delivery
 *   never waits), and its promise resolves when the server has processed it: every publish made in the
 *   same tick shares one PING/PONG (`flush`), so there is no round trip per message when messages are
 *   published together, and the flushes of successive ticks are pipelined. This makes "published" mean
 *   "the broker has it", as for Redis: a subscription made after `publish` resolved never receives that
 *   message, and a message lost with its connection rejects instead of vanishing (it may or may not have
 *   been delivered: core NATS is at-most-once). It rejects at once when the connection is closed,
 *   draining or disconnected (nats.js drops what was buffered during a disconnect when it dials again),
 *   and after `confirmTimeoutMs` if the server stops answering.
 * - Reconnect (forever, with jitter, to any server of the URL list or gossiped by the cluster) and
 *   resubscription are the client's own. While disconnected, `health()` is not ok with the reason, and
 *   `subscribe` rejects rather than waiting for the server to come back.
 * - Logs nothing: connection changes go to the optional `onStatus` listener.
 * - `close()` drains (pending messages are handled, buffered publishes sent), then closes.
 */
import type { Msg, NatsConnection, Status, Subscription } from '@nats-io/transport-node';
import { openNats, type NatsConnectOptions } from '../../connections/nats.js';
import type { Backplane, BackplaneSubscription } from './backplane.js';
import { EngineError } from '../errors.js';

/** A connection change or notable event of a cluster backplane, for the node to log or count. */
export interface BackplaneStatusEvent {
  readonly backplane: 'nats' | 'redis';
  /**
   * disconnected: lost the broker (publish rejects, health not ok); reconnecting: trying again;
   * reconnected: back, subscriptions restored by the client; error: a failure that did not disconnect
   * (or the reason of one); info: cluster topology news (servers added, lame duck mode); closed: gone for good.
   */
  readonly type: 'disconnected' | 'reconnecting' | 'reconnected' | 'error' | 'info' | 'closed';
  readonly detail: string;
  readonly error?: Error;
}

export type BackplaneStatusListener = (event: BackplaneStatusEvent) => void;

/** Called when a subscription handler throws; delivery to it and to everyone else goes on. */
export type BackplaneHandlerErrorListener = (error: unknown, subject: string) => void;

export interface NatsBackplaneOptions {
  /** Connection changes, for the node's log (also settable later as `backplane.onStatus`). */
  onStatus?: BackplaneStatusListener;
  /** Default: `process.emitWarning`, so a buggy handler is visible without crashing the node. */
  onHandlerError?: BackplaneHandlerErrorListener;
  /** How long `close()` lets the drain run before closing outright (ms, default 5,000). */
  drainTimeoutMs?: number;
  /** How long `publish` waits for the server to confirm it before rejecting (ms, default 5,000). */
  confirmTimeoutMs?: number;
}

type State = { kind: 'connected' } | { kind: 'disconnected'; detail: string; reconnecting: boolean } | { kind: 'closed'; detail: string };

export function defaultHandlerErrorListener(kind: string): BackplaneHandlerErrorListener {
  return (error, subject) => {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.emitWarning(`${kind} backplane handler for "${subject}" threw: ${detail}`, 'SwitchboardBackplaneWarning');
  };
}

/**
 * One gateway node's NATS backplane. It owns the connection it is given: `close()` drains and closes it.
 * Create it with `openNatsBackplane`, or pass a connection you opened with `openNats`.
 */
export class NatsBackplane implements Backplane {
  readonly kind = 'nats';
  /** Receives connection changes; may be set after construction (e.g. once the node has a logger). */
  onStatus: BackplaneStatusListener | undefined;
  private readonly onHandlerError: BackplaneHandlerErrorListener;
  private readonly drainTimeoutMs: number;
  private readonly confirmTimeoutMs: number;
  /** The confirmation shared by the publishes of the current tick, until its PING is sent. */
  private batch: Promise<void> | undefined;
  private state: State = { kind: 'connected' };
  private closing = false;
  private readonly statusLoop: Promise<void>;

  constructor(
    private readonly nc: NatsConnection,
    options: NatsBackplaneOptions = {},
  ) {
    this.onStatus = options.onStatus;
    this.onHandlerError = options.onHandlerError ?? defaultHandlerErrorListener('nats');
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5_000;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
    if (nc.isClosed()) this.state = { kind: 'closed', detail: 'closed' };
    this.statusLoop = this.watchStatus();
    void nc.closed().then((err) => {
      const detail = err instanceof Error ? `connection closed: ${err.message}` : 'closed';
      if (this.state.kind !== 'closed') {
        this.state = { kind: 'closed', detail };
        this.emit({ type: 'closed', detail, ...(err instanceof Error ? { error: err } : {}) });
      }
    });
  }

  /** The server (host:port) this node is connected to, or was last connected to. */
  get server(): string {
    return this.nc.getServer();
  }

  async publish(subject: string, payload: Uint8Array): Promise<void> {
    this.assertUsable('publish');
    try {
      this.nc.publish(subject, payload);
    } catch (err) {
      throw new EngineError('backplane', 'unavailable', `nats backplane publish to "${subject}" failed: ${(err as Error).message}`, { cause: err });
    }
    return this.confirm();
  }

  /**
   * Resolves when the server has processed everything published so far in this tick: one PING after
   * them, sent in a microtask, answers for all of them (the server handles a connection's commands in order).
   */
  private confirm(): Promise<void> {
    if (this.batch !== undefined) return this.batch;
    const batch = new Promise<void>((resolve, reject) => {
      queueMicrotask(() => {
        this.batch = undefined; // later publishes need a PING sent after them
        const fail = (why: string, cause?: unknown): void =>
          reject(
            new EngineError('backplane', 'unavailable', `nats backplane publish not confirmed by the server (${why}); it may not have been delivered`, {
              cause,
            }),
          );
        const timer = setTimeout(() => fail(`no answer within ${this.confirmTimeoutMs} ms`), this.confirmTimeoutMs);
        this.nc.flush().then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (err: unknown) => {
            clearTimeout(timer);
            fail((err as Error).message, err);
          },
        );
      });
    });
    this.batch = batch;
    return batch;
  }

  async subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<BackplaneSubscription> {
    this.assertUsable('subscribe');
    let active = true;
    const callback = (err: Error | null, msg: Msg): void => {
      if (err !== null) {
        this.emit({ type: 'error', detail: `subscription to "${subject}" failed: ${err.message}`, error: err });
        return;
      }
      if (!active) return;
      try {
        handler(msg.data);
      } catch (error) {
        this.onHandlerError(error, subject);
      }
    };
    let sub: Subscription;
    try {
      sub = this.nc.subscribe(subject, { callback });
    } catch (err) {
      throw new EngineError('backplane', 'unavailable', `nats backplane subscribe to "${subject}" failed: ${(err as Error).message}`, { cause: err });
    }
    const drop = (): void => {
      active = false;
      try {
        if (!this.nc.isClosed() && !sub.isClosed()) sub.unsubscribe();
      } catch (err) {
        this.emit({ type: 'error', detail: `unsubscribe from "${subject}" failed: ${(err as Error).message}`, error: err as Error });
      }
    };
    try {
      await this.nc.flush();
    } catch (err) {
      drop();
      throw new EngineError('backplane', 'unavailable', `nats backplane subscribe to "${subject}" was not confirmed by the server: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return {
      subject,
      unsubscribe: async () => {
        if (active) drop();
      },
    };
  }

  health(): { ok: boolean; detail?: string } {
    const s = this.state;
    if (this.closing && s.kind !== 'closed') return { ok: false, detail: 'closing' };
    if (s.kind === 'connected') return { ok: true };
    return { ok: false, detail: `nats: ${s.detail}` };
  }

  /** Drains the connection (bounded by `drainTimeoutMs`), then closes it. Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await this.nc.closed();
      return;
    }
    this.closing = true;
    if (!this.nc.isClosed()) {
      if (this.state.kind === 'connected' && !this.nc.isDraining()) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), this.drainTimeoutMs);
        });
        // A drain interrupted by a disconnect rejects without closing; close outright then.
        const drained = await Promise.race([
          this.nc.drain().then(
            () => 'ok' as const,
            () => 'failed' as const,
          ),
          timedOut,
        ]);
        clearTimeout(timer);
        if (drained !== 'ok') await this.nc.close();
      } else {
        await this.nc.close();
      }
    }
    this.state = { kind: 'closed', detail: 'closed' };
    await this.statusLoop;
  }

  private assertUsable(op: string): void {
    if (this.closing || this.nc.isClosed()) throw new EngineError('backplane', 'closed', `nats backplane ${op}: backplane is closed`);
    if (this.nc.isDraining()) throw new EngineError('backplane', 'unavailable', `nats backplane ${op}: connection is draining`);
    const s = this.state;
    if (s.kind !== 'connected') throw new EngineError('backplane', 'unavailable', `nats backplane ${op}: not connected to NATS (${s.detail})`);
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) this.onNatsStatus(s);
    } catch (err) {
      this.emit({ type: 'error', detail: `status stream failed: ${(err as Error).message}`, error: err as Error });
    }
  }

  private onNatsStatus(s: Status): void {
    switch (s.type) {
      case 'disconnect':
        if (this.state.kind === 'closed') return;
        this.state = { kind: 'disconnected', detail: `disconnected from ${s.server}`, reconnecting: false };
        this.emit({ type: 'disconnected', detail: `disconnected from ${s.server}` });
        return;
      case 'reconnecting':
        // Reported once per outage; the client emits this before every dial attempt.
        if (this.state.kind !== 'disconnected' || this.state.reconnecting) return;
        this.state = { kind: 'disconnected', detail: `${this.state.detail}, reconnecting`, reconnecting: true };
        this.emit({ type: 'reconnecting', detail: this.state.detail });
        return;
      case 'reconnect':
        if (this.state.kind === 'closed') return;
        this.state = { kind: 'connected' };
        this.emit({ type: 'reconnected', detail: `reconnected to ${s.server}; subscriptions restored` });
        return;
      case 'error':
        this.emit({ type: 'error', detail: s.error.message, error: s.error });
        return;
      case 'staleConnection':
        this.emit({ type: 'error', detail: 'stale connection (server stopped answering pings); reconnecting' });
        return;
      case 'slowConsumer':
        this.emit({ type: 'error', detail: `slow consumer on "${s.sub.getSubject()}" (${s.pending} pending)` });
        return;
      case 'ldm':
        this.emit({ type: 'info', detail: `server ${s.server} entered lame duck mode` });
        return;
      case 'update':
        this.emit({
          type: 'info',
          detail: `cluster servers changed: added [${(s.added ?? []).join(', ')}] deleted [${(s.deleted ?? []).join(', ')}]`,
        });
        return;
      case 'forceReconnect':
        this.emit({ type: 'info', detail: 'forced reconnect' });
        return;
      case 'close':
      case 'ping':
        return; // closing is reported from nc.closed(); pings are routine
    }
  }

  private emit(e: Omit<BackplaneStatusEvent, 'backplane'>): void {
    const listener = this.onStatus;
    if (listener === undefined) return;
    try {
      listener({ backplane: 'nats', ...e });
    } catch (err) {
      process.emitWarning(`backplane status listener threw: ${(err as Error).message}`, 'SwitchboardBackplaneWarning');
    }
  }
}

/** The servers of a NATS URL list, without credentials, for error messages. */
export function describeServers(url: string): string {
  return url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((raw) => {
      try {
        const u = new URL(raw.includes('://') ? raw : `nats://${raw}`);
        return `${u.protocol}//${u.hostname}:${u.port || '4222'}`;
      } catch {
        return '[unparsable URL]';
      }
    })
    .join(', ');
}

/**
 * Connects to NATS and returns the node's backplane. Rejects with an error naming NATS and the servers
 * if none can be reached at start (after `connectTimeoutMs`); later outages are retried forever.
 */
export async function openNatsBackplane(o: NatsConnectOptions & NatsBackplaneOptions & { name?: string }): Promise<NatsBackplane> {
  let nc: NatsConnection;
  try {
    nc = await openNats(o);
  } catch (err) {
    throw new EngineError('backplane', 'unavailable', `NATS unreachable at ${describeServers(o.url)}: ${(err as Error).message}`, { cause: err });
  }
  return new NatsBackplane(nc, o);
}
