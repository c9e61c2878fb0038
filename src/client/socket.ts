/**
 * Small pieces of the connection's life that touch the platform: shutting a WebSocket without its late events
 * reaching the client, and following the browser's online/offline events.
 */
import type { WebSocketLike } from './types.js';

/** Detaches the socket's handlers and closes it (or terminates it, where the implementation can: Node's `ws`). */
export function shutSocket(ws: WebSocketLike, graceful: boolean): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = () => undefined; // a late error event must not become an unhandled 'error'
  try {
    const terminate = (ws as { terminate?: () => void }).terminate;
    if (!graceful && typeof terminate === 'function') terminate.call(ws);
    else ws.close(1000, graceful ? 'client closed' : 'reconnecting');
  } catch {
    /* already closing */
  }
}

/** Browsers: calls `onOffline`/`onOnline` on the window's events; returns the function that stops it (null elsewhere). */
export function watchNetwork(onOffline: () => void, onOnline: () => void): (() => void) | null {
  const g = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
  const add = g.addEventListener;
  const remove = g.removeEventListener;
  if (typeof add !== 'function' || typeof remove !== 'function') return null;
  add.call(globalThis, 'offline', onOffline);
  add.call(globalThis, 'online', onOnline);
  return () => {
    remove.call(globalThis, 'offline', onOffline);
    remove.call(globalThis, 'online', onOnline);
  };
}
