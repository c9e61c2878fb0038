/**
 * The public client: a thin facade over the connection state machine (connection.ts), so the app sees
 * only `state`, `info`, `on`/`off`, `room()` and `close()`.
 */
import { Connection, type ConnectedInfo } from './connection.js';
import type { Listener } from './events.js';
import { resolveOptions } from './options.js';
import type { Room as RoomImpl } from './room.js';
import { invalidArgument } from './errors.js';
import type { ClientEvents, ClientOptions, ConnectionState, Json, RoomOptions, SendResult } from './types.js';

/** What the app can do with a room (see room.ts for the semantics). */
export type Room = Pick<RoomImpl, 'name' | 'on' | 'off' | 'position' | 'joined' | 'left' | 'publish' | 'history' | 'presence' | 'reloadFromHistory' | 'leave'>;

export class Client {
  readonly #c: Connection;

  /** Throws `SwitchboardClientError` (`invalid_argument`) at once for a bad URL or bad options. */
  constructor(url: string, options: ClientOptions = {}) {
    this.#c = new Connection(resolveOptions(url, options));
  }

  get state(): ConnectionState {
    return this.#c.state;
  }

  /** What the server said in the last `connected` (user, tenant, node, limits), or null before it. */
  get info(): ConnectedInfo | null {
    return this.#c.info;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.#c.events.on(event, listener);
  }

  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): void {
    this.#c.events.off(event, listener);
  }

  /**
   * The room `name`, joined now and after every reconnect (the same object for the same name until it is
   * left). Throws `invalid_argument` for a bad name.
   */
  room(name: string, options?: RoomOptions): Room {
    return this.#c.room(name, options);
  }

  /**
   * Sends `data` to a backend service topic (`orders.create`, docs/backend.md); resolves once one instance
   * of the service has it, or, for a durable service, once its queue stored it. `idem` (default: a random
   * id kept for this call) reaches the service for dedupe; the send is re-sent with the same idem if the
   * connection drops before the answer. Rejects with the server's code (`no_service`, `forbidden`, …).
   */
  send(topic: string, data: Json, options: { idem?: string } = {}): Promise<SendResult> {
    if (typeof topic !== 'string' || topic === '') return Promise.reject(invalidArgument('topic must be a non-empty string'));
    const idem = options.idem ?? randomId();
    return new Promise<SendResult>((resolve, reject) => {
      this.#c.request(
        { type: 'send', topic, data, idem },
        {
          resend: true,
          onReply: (f) => resolve({ topic, idem: f.idem, durable: f.durable, duplicate: f.duplicate }),
          onError: reject,
        },
      );
    });
  }

  /**
   * Calls a backend service (`pricing.quote`) and resolves with one instance's reply; rejects with
   * `rpc_timeout`, `no_service`, `service_error` … or `disconnected` (an RPC is not re-sent).
   */
  rpc(topic: string, data: Json, options: { timeoutMs?: number } = {}): Promise<Json> {
    if (typeof topic !== 'string' || topic === '') return Promise.reject(invalidArgument('topic must be a non-empty string'));
    const frame = { type: 'rpc' as const, topic, data, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) };
    return new Promise<Json>((resolve, reject) => {
      // The client's own deadline leaves the server's timeout room to answer first.
      this.#c.request(frame, { onReply: (f) => resolve(f.data), onError: reject }, options.timeoutMs !== undefined ? options.timeoutMs + 5_000 : undefined);
    });
  }

  /** Closes the connection for good: state `closed`; pending publishes and requests reject with `closed`. */
  close(): void {
    this.#c.close();
  }
}

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID !== undefined) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** Connects to a Switchboard node (`ws://host:8080/ws`) and keeps the connection up until `close()`. */
export function connect(url: string, options?: ClientOptions): Client {
  return new Client(url, options);
}
