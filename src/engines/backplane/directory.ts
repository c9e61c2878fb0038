/**
 * NodeDirectory: which nodes make up the cluster, learnt from announcements over the Backplane.
 *
 * Every node publishes a small JSON announcement of itself (its id and an `info` object, e.g. load
 * figures) on one subject every `intervalMs`, and subscribes to that subject. It is built on the plain
 * Backplane contract (publish/subscribe of bytes), so every implementation — memory, NATS, Redis — gets
 * it without code of its own (the cluster protocol stays out of the brokers, as STYLE.md asks).
 *
 * Contract (checked for every Backplane by test/conformance/backplane.suite.ts):
 * - `nodes()` lists this node (always, with its latest info) and every node heard within `expireAfterMs`
 *   (default 3 × `intervalMs`), each once, sorted by node id; `lastHeardMs` is this node's clock.
 * - A node that stops with `stop()` announces that it leaves and disappears from the others at once;
 *   a node that dies disappears after `expireAfterMs`.
 * - A malformed announcement is ignored and reported to `onError`; it never throws into the backplane.
 * - A failing publish (broker down) is reported to `onError`; announcing goes on at the next interval.
 */
import type { Backplane, BackplaneSubscription } from './backplane.js';
import { EngineError } from '../errors.js';

/** The reserved subject of announcements (prefixed `sb.` like every Switchboard subject). */
export const NODES_SUBJECT = 'sb.nodes';

export interface DirectoryEntry<T> {
  readonly node: string;
  readonly info: T;
  /** When this node last heard the announcement (ms since the Unix epoch, local clock). */
  readonly lastHeardMs: number;
  readonly self: boolean;
}

export interface NodeDirectoryOptions<T> {
  /** How often to announce, ms (default 2,000). */
  intervalMs?: number;
  /** Forget a node not heard for this long, ms (default 3 × intervalMs). */
  expireAfterMs?: number;
  /** Subject to announce on (default `sb.nodes`; tests use their own). */
  subject?: string;
  /** Builds this node's info at each announcement. */
  snapshot: () => T | Promise<T>;
  onError?: (err: unknown) => void;
}

interface Wire<T> {
  v: 1;
  node: string;
  leaving?: boolean;
  info?: T;
}

export class NodeDirectory<T> {
  private readonly intervalMs: number;
  private readonly expireAfterMs: number;
  private readonly subject: string;
  private readonly peers = new Map<string, { info: T; lastHeardMs: number }>();
  private own: { info: T; lastHeardMs: number } | null = null;
  private sub: BackplaneSubscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly backplane: Backplane,
    readonly nodeId: string,
    private readonly options: NodeDirectoryOptions<T>,
  ) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.expireAfterMs = options.expireAfterMs ?? 3 * this.intervalMs;
    this.subject = options.subject ?? NODES_SUBJECT;
  }

  /** Subscribes, announces at once, then every interval. Rejects if the subscription cannot be made. */
  async start(): Promise<void> {
    this.sub = await this.backplane.subscribe(this.subject, (payload) => this.receive(payload));
    await this.announce();
    this.timer = setInterval(() => void this.announce(), this.intervalMs);
    this.timer.unref();
  }

  /** This node and the live peers, sorted by node id. */
  nodes(): DirectoryEntry<T>[] {
    const now = Date.now();
    const out: DirectoryEntry<T>[] = [];
    for (const [node, p] of this.peers) {
      if (now - p.lastHeardMs > this.expireAfterMs) this.peers.delete(node);
      else if (node !== this.nodeId) out.push({ node, info: p.info, lastHeardMs: p.lastHeardMs, self: false });
    }
    if (this.own !== null) out.push({ node: this.nodeId, info: this.own.info, lastHeardMs: this.own.lastHeardMs, self: true });
    return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** Announces leaving (best effort), stops announcing and unsubscribes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    const bye: Wire<T> = { v: 1, node: this.nodeId, leaving: true };
    await this.backplane.publish(this.subject, encode(bye)).catch(() => undefined);
    await this.sub?.unsubscribe().catch(() => undefined);
  }

  /** Publishes this node's announcement now (also called by the interval timer). */
  async announce(): Promise<void> {
    if (this.stopped) return;
    try {
      const info = await this.options.snapshot();
      this.own = { info, lastHeardMs: Date.now() };
      await this.backplane.publish(this.subject, encode<T>({ v: 1, node: this.nodeId, info }));
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  private receive(payload: Uint8Array): void {
    let msg: Wire<T>;
    try {
      msg = JSON.parse(new TextDecoder().decode(payload)) as Wire<T>;
      if (msg === null || typeof msg !== 'object' || msg.v !== 1 || typeof msg.node !== 'string' || msg.node === '')
        throw new EngineError('backplane', 'invalid', 'not a node announcement');
      if (msg.leaving !== true && (msg.info === null || typeof msg.info !== 'object'))
        throw new EngineError('backplane', 'invalid', 'announcement without info');
    } catch (err) {
      this.options.onError?.(new EngineError('backplane', 'invalid', `bad announcement on ${this.subject}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    if (msg.node === this.nodeId) return; // our own copy: `own` is set when announcing
    if (msg.leaving === true) this.peers.delete(msg.node);
    else this.peers.set(msg.node, { info: msg.info as T, lastHeardMs: Date.now() });
  }
}

function encode<T>(w: Wire<T>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(w));
}
