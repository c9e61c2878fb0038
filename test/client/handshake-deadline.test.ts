/**
 * The SDK's connection attempts against a node whose accept queue is slow (docs/client.md, "Connection
 * attempts"): a TCP front that accepts at once but hands the bytes to the server late (or never). One attempt
 * at a time; the handshake has `handshakeTimeoutMs`, not `connectTimeoutMs`; an abandoned attempt's socket is
 * closed before the next one opens.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type Client, type StateChange } from '../../src/client/index.js';
import type { WebSocketConstructor } from '../../src/client/types.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { FakeServer } from './fake-server.js';

interface Front {
  readonly server: Server;
  readonly url: string;
  /** Every TCP connection the front accepted, with whether the client has closed it. */
  readonly accepted: { socket: Socket; closed: boolean }[];
  /** Forwards the connections held so far, and later ones at once. */
  release(): void;
}

/**
 * A TCP front that holds each connection's bytes (as a busy node's accept queue does) until `release()`. It
 * reads them into a buffer meanwhile, so it sees a client close the connection.
 */
async function front(targetPort: number): Promise<Front> {
  const accepted: Front['accepted'] = [];
  const held: { entry: Front['accepted'][number]; bytes: Buffer[] }[] = [];
  let released = false;
  const forward = (socket: Socket, bytes: Buffer[]): void => {
    socket.removeAllListeners('data');
    const up = tcpConnect(targetPort, '127.0.0.1');
    up.on('error', () => socket.destroy());
    for (const b of bytes) up.write(b);
    socket.pipe(up);
    up.pipe(socket);
  };
  const server = createServer((socket) => {
    const entry = { socket, closed: false };
    accepted.push(entry);
    socket.on('error', () => undefined);
    socket.on('close', () => (entry.closed = true));
    if (released) return forward(socket, []);
    const h = { entry, bytes: [] as Buffer[] };
    socket.on('data', (b: Buffer) => h.bytes.push(b));
    held.push(h);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    server,
    url: `ws://127.0.0.1:${port}/ws`,
    accepted,
    release() {
      released = true;
      for (const h of held.splice(0)) if (!h.entry.closed && !h.entry.socket.destroyed) forward(h.entry.socket, h.bytes);
    },
  };
}

/** `ws`'s WebSocket, counting sockets the SDK opened and has not closed. */
function countingWebSocket(): { ctor: WebSocketConstructor; openAtCreation: number[]; live: () => number } {
  let live = 0;
  const openAtCreation: number[] = [];
  class Counted extends WebSocket {
    private counted = true;
    constructor(url: string) {
      openAtCreation.push(live);
      live++;
      super(url);
    }
    private done(): void {
      if (this.counted) live--;
      this.counted = false;
    }
    override close(code?: number, reason?: string): void {
      this.done();
      super.close(code, reason);
    }
    override terminate(): void {
      this.done();
      super.terminate();
    }
  }
  return { ctor: Counted, openAtCreation, live: () => live };
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(): Promise<{ fake: FakeServer; f: Front }> {
  const fake = await FakeServer.start();
  const f = await front(fake.port);
  cleanup.push(
    () => fake.close(),
    () => new Promise<void>((resolve) => f.server.close(() => resolve())),
    () => {
      for (const a of f.accepted) a.socket.destroy();
    },
  );
  return { fake, f };
}

function client(url: string, options: Parameters<typeof connect>[1]): { c: Client; states: StateChange[] } {
  const c = connect(url, { user: 'alice', ...options });
  cleanup.push(() => c.close());
  const states: StateChange[] = [];
  c.on('state', (e) => states.push(e));
  return { c, states };
}

describe('connection attempts against a slow accept queue', () => {
  it('waits for a handshake held past connectTimeoutMs: one attempt, no duplicate', async () => {
    const { fake, f } = await setup();
    const counted = countingWebSocket();
    // connectTimeoutMs is short: it must not cut the handshake, only the wait for `connected` after it.
    const { c, states } = client(f.url, { WebSocket: counted.ctor, connectTimeoutMs: 300, handshakeTimeoutMs: 30_000, backoff: { minMs: 10, maxMs: 50 } });
    await waitFor(() => f.accepted.length === 1, 10_000, 'the attempt reached the front');
    // Held for well past connectTimeoutMs (a lower bound: the SDK's timers have had their chance).
    await sleep(1_500);
    expect(f.accepted).toHaveLength(1);
    expect(f.accepted[0]!.closed).toBe(false);
    f.release();
    await waitFor(() => c.state === 'connected', 10_000, 'connected once released');
    expect(f.accepted).toHaveLength(1);
    expect(fake.conns).toHaveLength(1);
    expect(counted.openAtCreation).toEqual([0]);
    expect(states.filter((e) => e.to === 'reconnecting')).toEqual([]);
  });

  it('abandons a handshake at handshakeTimeoutMs, closes its socket, and only then opens the next attempt', async () => {
    const { fake, f } = await setup();
    const counted = countingWebSocket();
    const { c, states } = client(f.url, { WebSocket: counted.ctor, handshakeTimeoutMs: 800, backoff: { minMs: 10, maxMs: 50 } });
    await waitFor(() => states.some((e) => e.to === 'reconnecting'), 10_000, 'the first attempt timed out');
    const timedOut = states.find((e) => e.to === 'reconnecting')!;
    expect(timedOut.error).toMatchObject({ code: 'timeout', message: expect.stringContaining('handshake') });
    // The front saw the first socket closed by the SDK.
    await waitFor(() => f.accepted[0]?.closed === true, 10_000, 'the abandoned socket closed');
    await waitFor(() => f.accepted.length >= 2, 10_000, 'a second attempt');
    f.release();
    await waitFor(() => c.state === 'connected', 10_000, 'connected');
    // Never two sockets open at once: each attempt was created with none other open.
    expect(counted.openAtCreation.every((n) => n === 0)).toBe(true);
    expect(counted.live()).toBe(1);
    // The abandoned attempts never reached the server: one connection there.
    await waitFor(() => fake.conns.length >= 1, 5_000, 'server connection');
    expect(fake.live).toHaveLength(1);
  });
});
