/**
 * A TCP proxy inside the test process that stands for a link between two places (the NATS gateway link
 * between two regions): every byte it forwards, in either direction, can be delayed by a fixed time (order
 * kept), and the link can be cut and restored.
 *
 * - `delayMs`: each chunk read from one side is written to the other `delayMs` after it was read.
 * - `cut()`: every open connection is reset (both sockets destroyed) and new connections are accepted and
 *   reset at once, so the servers on either side see the link go down and keep trying to reconnect.
 * - `hold()`: a partition without resets: open connections stay open but nothing is forwarded (bytes are
 *   kept in order, as TCP keeps unacknowledged data) until `restore()`, and new connections are held too.
 * - `restore()`: forwarding resumes (held bytes first); new connections are proxied again.
 * Counters: bytes forwarded each way, so a test can see what crossed the link.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type LinkState = 'up' | 'cut' | 'held';

interface Pipe {
  readonly a: Socket;
  readonly b: Socket;
  /** Chunks waiting to go a→b / b→a (due time, bytes). */
  readonly queues: [Chunk[], Chunk[]];
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

interface Chunk {
  readonly due: number;
  readonly bytes: Buffer;
}

export interface TcpProxy {
  /** The port to connect to (it forwards to the target). */
  readonly port: number;
  readonly state: LinkState;
  /** Added to every chunk in both directions, ms; may be changed at any time (applies to chunks read after). */
  delayMs: number;
  /** Bytes written to the target (client → target) and back (target → client) so far. */
  readonly bytesForward: number;
  readonly bytesBack: number;
  /** Bytes read but not yet written (delayed, or held by `hold`). */
  readonly pendingBytes: number;
  /** Connections currently proxied. */
  readonly connections: number;
  cut(): void;
  hold(): void;
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port that forwards every connection to 127.0.0.1:`targetPort`. */
export async function startTcpProxy(targetPort: number, options: { delayMs?: number } = {}): Promise<TcpProxy> {
  const pipes = new Set<Pipe>();
  let state: LinkState = 'up';
  let bytesForward = 0;
  let bytesBack = 0;

  const destroy = (p: Pipe): void => {
    if (p.closed) return;
    p.closed = true;
    if (p.timer !== null) clearTimeout(p.timer);
    p.a.destroy();
    p.b.destroy();
    pipes.delete(p);
  };

  // Writes every due chunk of both directions, in order; arms one timer for the next due chunk.
  const pump = (p: Pipe): void => {
    if (p.closed) return;
    if (p.timer !== null) {
      clearTimeout(p.timer);
      p.timer = null;
    }
    if (state !== 'up') return;
    const now = Date.now();
    let next = Infinity;
    p.queues.forEach((queue, dir) => {
      const to = dir === 0 ? p.b : p.a;
      while (queue.length > 0 && queue[0]!.due <= now) {
        const { bytes } = queue.shift()!;
        if (dir === 0) bytesForward += bytes.length;
        else bytesBack += bytes.length;
        to.write(bytes);
      }
      if (queue.length > 0) next = Math.min(next, queue[0]!.due);
    });
    if (next !== Infinity) p.timer = setTimeout(() => pump(p), Math.max(0, next - Date.now()));
  };

  const server: Server = createServer((a) => {
    if (state === 'cut') {
      a.destroy();
      return;
    }
    const b = connect(targetPort, '127.0.0.1');
    const p: Pipe = { a, b, queues: [[], []], timer: null, closed: false };
    pipes.add(p);
    const read = (dir: 0 | 1) => (bytes: Buffer) => {
      p.queues[dir].push({ due: Date.now() + proxy.delayMs, bytes });
      pump(p);
    };
    a.on('data', read(0));
    b.on('data', read(1));
    for (const s of [a, b]) {
      s.setNoDelay(true);
      s.on('error', () => destroy(p));
      s.on('close', () => destroy(p));
    }
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });

  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    get state() {
      return state;
    },
    delayMs: options.delayMs ?? 0,
    get bytesForward() {
      return bytesForward;
    },
    get bytesBack() {
      return bytesBack;
    },
    get pendingBytes() {
      let n = 0;
      for (const p of pipes) for (const q of p.queues) for (const c of q) n += c.bytes.length;
      return n;
    },
    get connections() {
      return pipes.size;
    },
    cut() {
      state = 'cut';
      for (const p of [...pipes]) destroy(p);
    },
    hold() {
      state = 'held';
    },
    restore() {
      state = 'up';
      for (const p of pipes) pump(p);
    },
    async close() {
      state = 'cut';
      for (const p of [...pipes]) destroy(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
