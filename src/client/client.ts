/**
 * The public client: a thin facade over the connection state machine (connection.ts), so the app sees
 * only `state`, `info`, `on`/`off`, `room()` and `close()`.
 */
import { Connection, type ConnectedInfo } from './connection.js';
import type { Listener } from './events.js';
import { resolveOptions } from './options.js';
import type { Room as RoomImpl } from './room.js';
import type { ClientEvents, ClientOptions, ConnectionState, RoomOptions } from './types.js';

/** What the app can do with a room (see room.ts for the semantics). */
export type Room = Pick<RoomImpl,
  'name' | 'on' | 'off' | 'position' | 'joined' | 'left' | 'publish' | 'history' | 'presence' | 'reloadFromHistory' | 'leave'>;

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

  /** Closes the connection for good: state `closed`; pending publishes and requests reject with `closed`. */
  close(): void {
    this.#c.close();
  }
}

/** Connects to a Switchboard node (`ws://host:8080/ws`) and keeps the connection up until `close()`. */
export function connect(url: string, options?: ClientOptions): Client {
  return new Client(url, options);
}
