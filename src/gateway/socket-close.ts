/**
 * Closing a connection's socket, for the connections of every wire protocol (protocol v1's and Pusher's): one
 * place for the flush, the close handshake and the grace after which a peer that does not answer it is cut.
 */
import type { WebSocket } from 'ws';
import type { Outbox, OutboxSink } from './outbox.js';

/** How long a peer that never answers the close handshake (or never reads) keeps its socket. */
export const CLOSE_GRACE_MS = 2_000;
/** How long a cut (slow) connection has to read up to its close frame before it is terminated. */
export const CUT_GRACE_MS = 5_000;

/** What closing needs of a connection. */
export interface ClosableSink extends OutboxSink {
  readonly ws: WebSocket;
  /** The close code sent; 0 while open. */
  closeCode: number;
}

/** Flushes queued output, then closes with `code` (at most once per connection). */
export function closeFlushed(c: ClosableSink, outbox: Outbox, code: number, reason: string): void {
  if (c.closeCode !== 0) return;
  c.closeCode = code;
  outbox.flushSink(c, true);
  c.dead = true;
  try {
    c.ws.close(code, reason.slice(0, 120));
  } catch {
    c.ws.terminate();
  }
  setTimeout(() => c.ws.terminate(), CLOSE_GRACE_MS).unref();
}

/**
 * Closes without flushing (a slow consumer: its queue was dropped). The close frame goes out behind at most the
 * socket's share of the output (outbox.ts, SOCKET_HIGH_WATER), so a client that reads again within CUT_GRACE_MS
 * gets it and learns why; after that the socket is terminated.
 */
export function cutUnflushed(c: ClosableSink, code: number, reason: string): void {
  if (c.closeCode !== 0) return;
  c.closeCode = code;
  c.dead = true;
  try {
    c.ws.close(code, reason);
  } catch {
    /* socket already gone */
  }
  setTimeout(() => c.ws.terminate(), CUT_GRACE_MS).unref();
}
