/**
 * A scriptable in-process Switchboard server for client SDK tests (centrifuge-js's fakeServer idea): a
 * real `ws` server on a free loopback port that speaks protocol v1 with a tiny room model (seq, epoch,
 * idem dedupe, recovery, history), and lets a test intercept any frame, send any frame, drop or close any
 * connection, and read every frame each connection sent.
 */
import { WebSocketServer, type WebSocket } from 'ws';

export type Frame = Record<string, unknown> & { type: string };

export interface StoredMessage {
  room: string;
  seq: number;
  epoch: string;
  from: string;
  ts: number;
  data: unknown;
}

interface FakeRoom {
  epoch: string;
  seq: number;
  messages: StoredMessage[];
  idem: Map<string, StoredMessage>;
  members: Set<FakeConn>;
}

export class FakeConn {
  readonly frames: Frame[] = [];
  user = '';
  readonly rooms = new Set<string>();
  closed: { code: number; reason: string } | null = null;

  constructor(readonly ws: WebSocket) {}

  send(frame: Frame): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(frame));
  }

  close(code: number, reason = ''): void {
    this.ws.close(code, reason);
  }

  /** Drops the TCP connection without a close frame (the client sees 1006). */
  drop(): void {
    this.ws.terminate();
  }

  sent(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }
}

/** Returns true when it handled the frame itself (the default behaviour is then skipped). */
export type Interceptor = (conn: FakeConn, frame: Frame) => boolean | void;

export interface FakeServerOptions {
  pingIntervalMs?: number;
  maxFrameBytes?: number;
  /** Send `ping` every `pingIntervalMs` (default true). */
  ping?: boolean;
}

export class FakeServer {
  readonly conns: FakeConn[] = [];
  readonly rooms = new Map<string, FakeRoom>();
  interceptor: Interceptor | null = null;
  private epochCounter = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly wss: WebSocketServer,
    readonly port: number,
    private readonly o: Required<FakeServerOptions>,
  ) {
    wss.on('connection', (ws) => this.accept(ws));
  }

  static async start(options: FakeServerOptions = {}): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    const addr = wss.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    return new FakeServer(wss, port, { pingIntervalMs: 25_000, maxFrameBytes: 65_536, ping: true, ...options });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** The newest connection. */
  get last(): FakeConn {
    const c = this.conns[this.conns.length - 1];
    if (c === undefined) throw new Error('no connection yet');
    return c;
  }

  get live(): FakeConn[] {
    return this.conns.filter((c) => c.closed === null);
  }

  room(name: string): FakeRoom {
    let r = this.rooms.get(name);
    if (r === undefined) {
      r = { epoch: `ep${++this.epochCounter}`, seq: 0, messages: [], idem: new Map(), members: new Set() };
      this.rooms.set(name, r);
    }
    return r;
  }

  /** Appends a message to a room; `deliver: false` stores it without sending it to members (a lost frame). */
  append(room: string, data: unknown, options: { from?: string; deliver?: boolean; idem?: string } = {}): StoredMessage {
    const r = this.room(room);
    if (options.idem !== undefined) {
      const seen = r.idem.get(options.idem);
      if (seen !== undefined) return seen;
    }
    const m: StoredMessage = { room, seq: ++r.seq, epoch: r.epoch, from: options.from ?? 'server', ts: Date.now(), data };
    r.messages.push(m);
    if (options.idem !== undefined) r.idem.set(options.idem, m);
    if (options.deliver !== false) for (const c of r.members) c.send({ type: 'message', ...m });
    return m;
  }

  /** Restarts a room's sequence under a new epoch (as after a sequencer loss). */
  newEpoch(room: string): string {
    const r = this.room(room);
    r.epoch = `ep${++this.epochCounter}`;
    r.seq = 0;
    r.messages = [];
    r.idem.clear();
    return r.epoch;
  }

  /** Remove messages from history (a hole history cannot fill). */
  forget(room: string, seqs: number[]): void {
    const r = this.room(room);
    r.messages = r.messages.filter((m) => !seqs.includes(m.seq));
  }

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.conns) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket): void {
    const conn = new FakeConn(ws);
    this.conns.push(conn);
    let pinger: NodeJS.Timeout | undefined;
    ws.on('message', (raw: Buffer) => {
      const frame = JSON.parse(raw.toString('utf8')) as Frame;
      conn.frames.push(frame);
      if (this.interceptor?.(conn, frame) === true) return;
      this.handle(conn, frame);
      if (frame.type === 'connect' && this.o.ping && pinger === undefined) {
        pinger = setInterval(() => conn.send({ type: 'ping' }), this.o.pingIntervalMs);
      }
    });
    ws.on('close', (code, reason) => {
      clearInterval(pinger);
      conn.closed = { code, reason: reason.toString() };
      for (const r of this.rooms.values()) r.members.delete(conn);
    });
    ws.on('error', () => undefined);
  }

  /** The default protocol behaviour. */
  handle(conn: FakeConn, f: Frame): void {
    const id = f.id;
    const room = typeof f.room === 'string' ? f.room : '';
    switch (f.type) {
      case 'connect':
        conn.user = typeof f.user === 'string' ? f.user : `anon-${this.conns.length}`;
        conn.send({
          type: 'connected',
          ...(id !== undefined ? { id } : {}),
          connId: `fake-${this.conns.length}`,
          node: 'fake',
          user: conn.user,
          tenant: 'default',
          protocol: 1,
          pingIntervalMs: this.o.pingIntervalMs,
          pingTimeoutMs: 10_000,
          maxFrameBytes: this.o.maxFrameBytes,
        });
        return;
      case 'ping':
        conn.send({ type: 'pong', ...(id !== undefined ? { id } : {}) });
        return;
      case 'join': {
        const r = this.room(room);
        const since = f.since as { seq: number; epoch: string } | undefined;
        const last = r.seq;
        let recovery = 'none';
        let missed: StoredMessage[] = [];
        if (since !== undefined) {
          const after = r.messages.filter((m) => m.seq > since.seq);
          const contiguous = after.every((m, i) => m.seq === since.seq + 1 + i);
          if (since.epoch === r.epoch && since.seq <= last && contiguous) {
            recovery = 'recovered';
            missed = after;
          } else recovery = 'reset';
        }
        r.members.add(conn);
        conn.rooms.add(room);
        conn.send({ type: 'joined', id, room, seq: last, epoch: r.epoch, recovery, missed: missed.length });
        for (const m of missed) conn.send({ type: 'message', ...m });
        return;
      }
      case 'leave':
        this.room(room).members.delete(conn);
        conn.rooms.delete(room);
        conn.send({ type: 'left', id, room });
        return;
      case 'publish': {
        if (!conn.rooms.has(room)) {
          conn.send({ type: 'error', id, code: 'not_joined', message: 'join first', retryable: false, room });
          return;
        }
        const r = this.room(room);
        const key = typeof f.idem === 'string' ? `${conn.user}\u0000${f.idem}` : undefined;
        const seen = key !== undefined ? r.idem.get(key) : undefined;
        if (seen !== undefined) {
          conn.send({ type: 'ack', id, room, seq: seen.seq, epoch: seen.epoch, duplicate: true });
          return;
        }
        const m = this.append(room, f.data, { from: conn.user });
        if (key !== undefined) r.idem.set(key, m);
        conn.send({ type: 'ack', id, room, seq: m.seq, epoch: m.epoch, duplicate: false });
        return;
      }
      case 'history': {
        const r = this.room(room);
        const limit = typeof f.limit === 'number' ? f.limit : 50;
        let list = r.messages;
        let more: boolean;
        if (typeof f.after === 'number') {
          list = list.filter((m) => m.seq > (f.after as number));
          more = list.length > limit;
          list = list.slice(0, limit);
        } else {
          if (typeof f.before === 'number') list = list.filter((m) => m.seq < (f.before as number));
          more = list.length > limit;
          list = list.slice(Math.max(0, list.length - limit));
        }
        conn.send({ type: 'history.page', id, room, messages: list, more });
        return;
      }
      case 'presence':
        conn.send({
          type: 'presence.list',
          id,
          room,
          members: [...this.room(room).members].map((c) => ({ user: c.user, online: true, connections: 1, lastSeen: Date.now() })),
        });
        return;
      default:
    }
  }
}
