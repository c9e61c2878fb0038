/**
 * Closing the HTTP listener at the end of a drain without resetting what is already on its way: the node
 * waits until the accept queue has settled (no new connection for `quietMs`, at most `maxWaitMs`), so
 * connections the kernel already queued are accepted and answered (503 for upgrades and readiness while
 * draining), then stops listening and lets requests in progress finish (at most `requestGraceMs`) before it
 * closes what is left. Closing the listener while connections wait in its backlog would reset them.
 */
import type { Server } from 'node:http';

export interface CloseListenerOptions {
  /** No new connection for this long means the accept queue is empty (default 50 ms). */
  quietMs?: number;
  /** Longest wait for that quiet, ms (default 1000). */
  maxWaitMs?: number;
  /** How long requests in progress get to finish once the listener is closed, ms (default 1000). */
  requestGraceMs?: number;
}

export interface ListenerCloser {
  close(options?: CloseListenerOptions): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const afterPoll = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Starts watching `server`'s accepted connections; call before the server is used. */
export function watchListener(server: Server): ListenerCloser {
  let lastAccept = 0;
  server.on('connection', () => {
    lastAccept = performance.now();
  });
  return {
    async close({ quietMs = 50, maxWaitMs = 1000, requestGraceMs = 1000 } = {}) {
      const start = performance.now();
      for (;;) {
        // Checked after a poll phase (setImmediate runs right after it): connections waiting in the backlog,
        // and request bytes of connections already accepted, have been taken then, even after a stall.
        await afterPoll();
        const now = performance.now();
        const quietFor = now - lastAccept;
        if (quietFor >= quietMs || now - start >= maxWaitMs) break;
        await sleep(Math.max(1, Math.min(quietMs - quietFor, maxWaitMs - (now - start))));
      }
      // Synchronously after that check: server.close() also closes idle connections, and a connection whose
      // request has not been read yet counts as idle (it would be reset).
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, requestGraceMs)))]);
      clearTimeout(timer);
      server.closeAllConnections();
    },
  };
}
