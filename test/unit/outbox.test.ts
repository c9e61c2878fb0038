/** Outbox: per-tick coalescing with cork/uncork over a real loopback socket, slow sinks, dead sinks. */
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Outbox, SOCKET_HIGH_WATER, type OutboxSink } from '../../src/gateway/outbox.js';
import { waitFor } from '../helpers/wait.js';

let server: Server;
const accepted: Socket[] = [];
const opened: Socket[] = [];

beforeAll(async () => {
  server = createServer((s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});

afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
  for (const s of accepted.splice(0)) s.destroy();
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A connected loopback pair, with every call the Outbox makes on the client socket recorded. */
interface Pair {
  readonly socket: Socket;
  /** 'cork' | 'uncork' | 'write:<bytes>' in call order. */
  readonly calls: string[];
  /** Calls of the stream's _write / _writev, i.e. what reaches the socket handle. */
  readonly lowLevel: string[];
  /** Everything the peer has received so far. */
  received(): Buffer;
}

async function pair(): Promise<Pair> {
  const socket = createConnection({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  opened.push(socket);
  await once(socket, 'connect');
  // The server side of this connection is the accepted socket whose remote port is our local port.
  const findPeer = (): Socket | undefined => accepted.find((a) => a.remotePort === socket.localPort);
  await waitFor(() => findPeer() !== undefined, 2_000, 'accept');
  const peer = findPeer()!;
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));

  const calls: string[] = [];
  const lowLevel: string[] = [];
  const origWrite = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  const origCork = socket.cork.bind(socket);
  const origUncork = socket.uncork.bind(socket);
  socket.write = ((chunk: Buffer) => {
    calls.push(`write:${chunk.length}`);
    return origWrite(chunk);
  }) as Socket['write'];
  socket.cork = () => {
    calls.push('cork');
    origCork();
  };
  socket.uncork = () => {
    calls.push('uncork');
    origUncork();
  };
  // Node's stream internals: one _writev call is one batched write to the handle.
  const internals = socket as unknown as {
    _write: (...a: unknown[]) => unknown;
    _writev: (chunks: unknown[], ...rest: unknown[]) => unknown;
  };
  const origLowWrite = internals._write.bind(socket);
  const origLowWritev = internals._writev.bind(socket);
  internals._write = (...a: unknown[]) => {
    lowLevel.push('_write');
    return origLowWrite(...a);
  };
  internals._writev = (chunks: unknown[], ...rest: unknown[]) => {
    lowLevel.push(`_writev:${chunks.length}`);
    return origLowWritev(chunks, ...rest);
  };
  return { socket, calls, lowLevel, received: () => Buffer.concat(chunks) };
}

function sink(socket: Socket): OutboxSink & { slow: number } {
  const s: OutboxSink & { slow: number } = {
    socket,
    queue: null,
    queuedBytes: 0,
    dead: false,
    overSince: 0,
    blocked: false,
    slow: 0,
    onSlow: () => {
      s.slow += 1;
    },
  };
  return s;
}

const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

describe('Outbox', () => {
  it('writes the frames queued in one tick in one flush, between cork and uncork', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const s = sink(p.socket);
    outbox.enqueue(s, bytes('aaa'));
    outbox.enqueue(s, bytes('bbbb'));
    outbox.enqueue(s, bytes('ccccc'));
    expect(p.calls).toEqual([]); // nothing is written synchronously
    expect(s.queuedBytes).toBe(12);
    await nextTick();
    await nextTick();
    expect(p.calls).toEqual(['cork', 'write:3', 'write:4', 'write:5', 'uncork']);
    expect(p.lowLevel).toEqual(['_writev:3']); // one batched write reaches the socket
    expect(writes).toEqual([1]);
    expect(s.queue).toBeNull();
    expect(s.queuedBytes).toBe(0);
    await waitFor(() => p.received().length === 12, 2_000, 'peer data');
    expect(p.received().toString()).toBe('aaabbbbccccc');
  });

  it('writes a single queued frame without corking', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    outbox.enqueue(sink(p.socket), bytes('only'));
    await nextTick();
    await nextTick();
    expect(p.calls).toEqual(['write:4']);
    expect(writes).toEqual([1]);
    await waitFor(() => p.received().toString() === 'only', 2_000, 'peer data');
  });

  it('reports through onWrite the number of sinks written in a flush', async () => {
    const [p1, p2, p3] = await Promise.all([pair(), pair(), pair()]);
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const s1 = sink(p1.socket);
    const s2 = sink(p2.socket);
    const s3 = sink(p3.socket);
    for (let i = 0; i < 5; i++) {
      outbox.enqueue(s1, bytes('x'));
      outbox.enqueue(s2, bytes('y'));
    }
    outbox.enqueue(s3, bytes('z'));
    await nextTick();
    await nextTick();
    expect(writes).toEqual([3]);
    expect(p1.calls.filter((c) => c === 'cork')).toHaveLength(1);
    expect(p2.calls.filter((c) => c === 'cork')).toHaveLength(1);
    await waitFor(() => p1.received().length === 5 && p2.received().length === 5 && p3.received().length === 1, 2_000, 'peer data');
    expect(p1.received().toString()).toBe('xxxxx');
    expect(p2.received().toString()).toBe('yyyyy');
  });

  it('flushes again for frames queued in a later tick', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const s = sink(p.socket);
    outbox.enqueue(s, bytes('1'));
    outbox.enqueue(s, bytes('2'));
    await nextTick();
    await nextTick();
    outbox.enqueue(s, bytes('3'));
    outbox.enqueue(s, bytes('4'));
    await nextTick();
    await nextTick();
    expect(writes).toEqual([1, 1]);
    expect(p.calls).toEqual(['cork', 'write:1', 'write:1', 'uncork', 'cork', 'write:1', 'write:1', 'uncork']);
    await waitFor(() => p.received().toString() === '1234', 2_000, 'peer data');
  });

  it('a sink over maxBufferedBytes gets onSlow once, its queue is dropped and it is marked dead', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(100, (n) => writes.push(n));
    const s = sink(p.socket);
    outbox.enqueue(s, Buffer.alloc(60, 0x61));
    expect(s.slow).toBe(0);
    expect(s.dead).toBe(false);
    outbox.enqueue(s, Buffer.alloc(41, 0x62)); // 101 > 100
    expect(s.slow).toBe(1);
    expect(s.dead).toBe(true);
    expect(s.queue).toBeNull();
    expect(s.queuedBytes).toBe(0);
    outbox.enqueue(s, Buffer.alloc(10, 0x63));
    outbox.enqueue(s, Buffer.alloc(1000, 0x64));
    expect(s.slow).toBe(1);
    await nextTick();
    await nextTick();
    expect(p.calls).toEqual([]);
    expect(writes).toEqual([]);
  });

  it('exactly maxBufferedBytes is not slow', async () => {
    const p = await pair();
    const outbox = new Outbox(100, () => undefined);
    const s = sink(p.socket);
    outbox.enqueue(s, Buffer.alloc(60));
    outbox.enqueue(s, Buffer.alloc(40));
    expect(s.slow).toBe(0);
    expect(s.dead).toBe(false);
    await nextTick();
    await nextTick();
    await waitFor(() => p.received().length === 100, 2_000, 'peer data');
  });

  it("counts the socket's unsent bytes towards maxBufferedBytes", async () => {
    const p = await pair();
    const outbox = new Outbox(100, () => undefined);
    const s = sink(p.socket);
    // Bytes written while corked stay in the socket's buffer: writableLength is exactly 90.
    p.socket.cork();
    p.socket.write(Buffer.alloc(90));
    expect(p.socket.writableLength).toBe(90);
    outbox.enqueue(s, Buffer.alloc(10));
    expect(s.slow).toBe(0);
    outbox.enqueue(s, Buffer.alloc(1));
    expect(s.slow).toBe(1);
    expect(s.dead).toBe(true);
    p.socket.uncork();
  });

  it('dead sinks get nothing: neither frames enqueued after death nor frames queued before it', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const before = sink(p.socket);
    outbox.enqueue(before, bytes('queued-then-closed'));
    before.dead = true; // closed by its owner before the flush
    const dead = sink(p.socket);
    dead.dead = true;
    outbox.enqueue(dead, bytes('never'));
    expect(dead.queue).toBeNull();
    expect(dead.queuedBytes).toBe(0);
    await nextTick();
    await nextTick();
    expect(p.calls).toEqual([]);
    expect(writes).toEqual([]);
    expect(p.received().length).toBe(0);
  });

  it('does not write to a destroyed socket', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const s = sink(p.socket);
    outbox.enqueue(s, bytes('a'));
    outbox.enqueue(s, bytes('b'));
    p.socket.destroy();
    await nextTick();
    await nextTick();
    expect(p.calls).toEqual([]);
    expect(writes).toEqual([]);
  });

  it('flushSink writes a sink now, and the scheduled flush then has nothing left for it', async () => {
    const p = await pair();
    const writes: number[] = [];
    const outbox = new Outbox(1 << 20, (n) => writes.push(n));
    const s = sink(p.socket);
    outbox.enqueue(s, bytes('ab'));
    outbox.enqueue(s, bytes('cd'));
    expect(outbox.flushSink(s)).toBe(true);
    expect(p.calls).toEqual(['cork', 'write:2', 'write:2', 'uncork']);
    expect(s.queue).toBeNull();
    expect(outbox.flushSink(s)).toBe(false);
    await nextTick();
    await nextTick();
    expect(p.calls).toHaveLength(4);
    expect(writes).toEqual([]);
    await waitFor(() => p.received().toString() === 'abcd', 2_000, 'peer data');
  });
});

describe('Outbox soft bound (slow.bytes for slow.graceMs)', () => {
  it('a burst that drains is left alone; unsent bytes that stay over the bound past the grace are cut', async () => {
    const p = await pair();
    const outbox = new Outbox(1 << 30, () => undefined, { bytes: 100, graceMs: 50 });
    const s = sink(p.socket);
    // Hold the bytes in user space (corked) to model a peer that does not read.
    p.socket.cork();
    outbox.enqueue(s, Buffer.alloc(500));
    outbox.flushSink(s);
    expect(s.overSince).toBeGreaterThan(0);
    outbox.checkSlow(s, s.overSince + 10);
    expect(s.slow).toBe(0);
    outbox.checkSlow(s, s.overSince + 60);
    expect(s.slow).toBe(1);
    expect(s.dead).toBe(true);
    p.socket.uncork();
  });

  it('over the soft bound but drained before the grace: the clock resets', async () => {
    const p = await pair();
    const outbox = new Outbox(1 << 30, () => undefined, { bytes: 100, graceMs: 50 });
    const s = sink(p.socket);
    p.socket.cork();
    outbox.enqueue(s, Buffer.alloc(500));
    outbox.flushSink(s);
    const since = s.overSince;
    expect(since).toBeGreaterThan(0);
    p.socket.uncork();
    await waitFor(() => p.socket.writableLength === 0, 2_000, 'drain');
    outbox.checkSlow(s, since + 60);
    expect(s.slow).toBe(0);
    expect(s.overSince).toBe(0);
  });
});

describe('Outbox backpressure', () => {
  it('hands a socket whose peer does not read at most about SOCKET_HIGH_WATER unsent bytes; the rest stays queued, then all arrives in order', async () => {
    const p = await pair();
    const peer = accepted.find((a) => a.remotePort === p.socket.localPort)!;
    peer.pause();
    const outbox = new Outbox(64 << 20, () => undefined);
    const s = sink(p.socket);
    const frame = (i: number): Buffer => Buffer.alloc(16_384, i % 251);
    const total = 1200; // ~19 MiB: far more than the loopback socket buffers take
    for (let i = 0; i < total; i++) {
      outbox.enqueue(s, frame(i));
      if (i % 50 === 49) await nextTick();
    }
    await nextTick();
    // the kernel buffers are full; Node's buffer holds at most one batch beyond the high-water mark
    expect(p.socket.writableLength).toBeLessThanOrEqual(SOCKET_HIGH_WATER + 16_384);
    expect(s.queuedBytes).toBeGreaterThan(0);
    expect(s.blocked).toBe(true);
    peer.resume();
    await waitFor(() => p.received().length === total * 16_384, 20_000, 'everything delivered after the peer reads again');
    const got = p.received();
    for (const i of [0, 1, 599, total - 1]) expect(got[i * 16_384]).toBe(i % 251);
    expect(s.queue).toBeNull();
    expect(s.blocked).toBe(false);
  });
});
