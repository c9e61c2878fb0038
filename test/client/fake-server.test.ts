/**
 * The client SDK against the scriptable fake server (test/client/fake-server.ts): ordering, dedupe, gap
 * repair, resets, resume, reconnect policy, watchdog, offline queue, idempotent retries, in-flight bound.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { connect, type Client, type ClientOptions, type Message, type ResetEvent, type StateChange } from '../../src/client/index.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { FakeServer, type FakeConn, type Frame } from './fake-server.js';

const servers: FakeServer[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.close();
  vi.unstubAllGlobals();
});

async function server(o: ConstructorParameters<typeof Object>[0] = {}): Promise<FakeServer> {
  const s = await FakeServer.start(o as never);
  servers.push(s);
  return s;
}

function client(s: FakeServer, o: ClientOptions = {}): { c: Client; states: StateChange[] } {
  const c = connect(s.url, { WebSocket, user: 'alice', backoff: { minMs: 20, maxMs: 200 }, gapWaitMs: 50, ...o });
  clients.push(c);
  const states: StateChange[] = [];
  c.on('state', (e) => states.push(e));
  return { c, states };
}

function collect(room: ReturnType<Client['room']>): { messages: Message[]; resets: ResetEvent[] } {
  const messages: Message[] = [];
  const resets: ResetEvent[] = [];
  room.on('message', (m) => messages.push(m));
  room.on('reset', (r) => resets.push(r));
  return { messages, resets };
}

const seqs = (ms: Message[]): number[] => ms.map((m) => m.seq);
const msgFrame = (s: FakeServer, room: string, seq: number, epoch?: string): Frame => ({
  type: 'message',
  room,
  seq,
  epoch: epoch ?? s.room(room).epoch,
  from: 'x',
  ts: 1,
  data: { n: seq },
});

describe('connection and rooms', () => {
  it('connecting → connected, joins, publishes with an idem, receives messages, presence, direct, history', async () => {
    const s = await server();
    const { c, states } = client(s);
    const room = c.room('lobby');
    const got = collect(room);
    const directs: unknown[] = [];
    c.on('direct', (d) => directs.push(d.data));
    await waitFor(() => room.joined, 5000, 'joined');
    expect(states.map((e) => `${e.from}>${e.to}`)).toEqual(['disconnected>connecting', 'connecting>connected']);
    expect(c.info?.user).toBe('alice');
    const ack = await room.publish({ text: 'hi' });
    expect(ack).toMatchObject({ seq: 1, epoch: s.room('lobby').epoch, duplicate: false });
    const sent = s.last.sent('publish')[0]!;
    expect(sent.idem).toMatch(/^sb-/);
    await waitFor(() => got.messages.length === 1, 5000, 'own message');
    s.append('lobby', 'from server');
    await waitFor(() => got.messages.length === 2, 5000, 'server message');
    expect(got.messages[1]).toEqual({ room: 'lobby', seq: 2, epoch: s.room('lobby').epoch, from: 'server', ts: expect.any(Number), data: 'from server' });
    s.last.send({ type: 'direct', from: 'server', ts: 1, data: { x: 1 } });
    await waitFor(() => directs.length === 1, 5000, 'direct');
    expect((await room.presence()).map((m) => m.user)).toEqual(['alice']);
    expect(seqs((await room.history({ limit: 10 })).messages)).toEqual([1, 2]);
    await room.leave();
    expect(room.left).toBe(true);
    await expect(room.publish(1)).rejects.toMatchObject({ code: 'closed' });
    expect(s.last.sent('leave')).toHaveLength(1);
  });

  it('delivers in seq order, once: reorders early messages and drops duplicates', async () => {
    const s = await server();
    const { c } = client(s, { gapWaitMs: 5000 });
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    for (const seq of [2, 3, 1, 2, 3, 1, 4, 4]) s.last.send(msgFrame(s, 'r', seq));
    await waitFor(() => got.messages.length >= 4, 5000, 'messages');
    await new Promise((r) => setTimeout(r, 50));
    expect(seqs(got.messages)).toEqual([1, 2, 3, 4]);
    expect(room.position).toEqual({ seq: 4, epoch: s.room('r').epoch });
  });

  it('server frames are checked: a malformed frame is ignored, a reply of the wrong type fails the request', async () => {
    const s = await server();
    const { c } = client(s);
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.last.send({ ...msgFrame(s, 'r', 1), ts: 'yesterday', data: { bad: true } }); // ts must be a number
    s.last.send(msgFrame(s, 'r', 1));
    await waitFor(() => got.messages.length === 1, 5000, 'message');
    expect(got.messages[0]!.data).toEqual({ n: 1 });
    let answered = 0;
    s.interceptor = (conn, f) => {
      if (f.type !== 'publish' || answered++ > 0) return false;
      conn.send({ type: 'left', id: f.id, room: 'r' }); // not an ack: the SDK treats it as a retryable failure
      return true;
    };
    const ack = await room.publish('x');
    expect(ack).toMatchObject({ seq: 1, duplicate: false }); // the fake server's own count (the messages above were sent around it)
    const sent = s.last.sent('publish');
    expect(sent).toHaveLength(2);
    expect(sent[1]!.idem).toBe(sent[0]!.idem);
  });

  it('fills a gap that does not fill by itself from history, then delivers what was held', async () => {
    const s = await server();
    const { c } = client(s);
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.append('r', 1);
    s.append('r', 2, { deliver: false }); // lost on the way
    s.append('r', 3);
    s.append('r', 4);
    await waitFor(() => got.messages.length === 4, 5000, 'gap filled');
    expect(seqs(got.messages)).toEqual([1, 2, 3, 4]);
    const asked = s.last.sent('history');
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ after: 1 });
    expect(got.resets).toEqual([]);
  });

  it('a catchup (conflate) or skipped (drop) frame: the seqs it names are not waited for or fetched; the app gets the event, then the messages in order', async () => {
    const s = await server();
    const { c } = client(s, { gapWaitMs: 50 });
    const room = c.room('r');
    const got = collect(room);
    const catchups: unknown[] = [];
    const skips: unknown[] = [];
    room.on('catchup', (e) => catchups.push(e));
    room.on('skipped', (e) => skips.push(e));
    await waitFor(() => room.joined, 5000, 'joined');
    s.last.send(msgFrame(s, 'r', 1));
    s.last.send(msgFrame(s, 'r', 2));
    // Conflated: of 3…10 only each key's newest (5 and 10), then 11 live.
    s.last.send({ type: 'catchup', room: 'r', from: 3, to: 10, keys: 2, complete: true });
    for (const seq of [5, 10, 11]) s.last.send(msgFrame(s, 'r', seq));
    await waitFor(() => got.messages.length === 5, 5000, 'caught up');
    // Dropped: 12…19 skipped, the newest (20) follows.
    s.last.send({ type: 'skipped', room: 'r', from: 12, to: 19 });
    for (const seq of [20, 21]) s.last.send(msgFrame(s, 'r', seq));
    await waitFor(() => got.messages.length === 7, 5000, 'after the skip');
    // Long enough for a gap timer (gapWaitMs 50) to have fired, had the SDK seen a gap.
    await new Promise((r) => setTimeout(r, 200));
    expect(seqs(got.messages)).toEqual([1, 2, 5, 10, 11, 20, 21]);
    expect(catchups).toEqual([{ room: 'r', from: 3, to: 10, keys: 2, complete: true }]);
    expect(skips).toEqual([{ room: 'r', from: 12, to: 19 }]);
    expect(got.resets).toEqual([]);
    expect(s.last.sent('history')).toEqual([]);
    expect(room.position?.seq).toBe(21);
  });

  it('a gap history cannot fill ends in a reset (reason gap) and delivery goes on', async () => {
    const s = await server();
    const { c } = client(s, { gapWaitMs: 20 });
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.append('r', 1);
    s.append('r', 2, { deliver: false });
    s.forget('r', [2]);
    s.append('r', 3);
    await waitFor(() => got.messages.length === 2, 5000, 'after the reset');
    expect(seqs(got.messages)).toEqual([1, 3]);
    expect(got.resets).toEqual([{ room: 'r', position: { seq: 2, epoch: s.room('r').epoch }, previous: { seq: 1, epoch: s.room('r').epoch }, reason: 'gap' }]);
  });

  it('an epoch change mid-stream is a reset, then the new run is delivered', async () => {
    const s = await server();
    const { c } = client(s);
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.append('r', 'old');
    await waitFor(() => got.messages.length === 1, 5000, 'first');
    const old = s.room('r').epoch;
    const epoch = s.newEpoch('r');
    s.append('r', 'new');
    await waitFor(() => got.messages.length === 2, 5000, 'second');
    expect(got.messages.map((m) => [m.seq, m.epoch])).toEqual([
      [1, old],
      [1, epoch],
    ]);
    expect(got.resets).toEqual([{ room: 'r', position: { seq: 0, epoch }, previous: { seq: 1, epoch: old }, reason: 'epoch' }]);
  });
});

describe('resume after reconnect', () => {
  it('rejoins with since = last delivered; recovered messages arrive once, in order', async () => {
    const s = await server();
    const { c, states } = client(s);
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.append('r', 1);
    await waitFor(() => got.messages.length === 1, 5000, 'first');
    const first = s.last;
    // Drop and append in the same tick: the client cannot have rejoined yet (its backoff may be < 20 ms,
    // shorter than any polling interval), so 2 and 3 can only arrive by recovery.
    first.drop();
    s.append('r', 2);
    s.append('r', 3);
    await waitFor(() => states.some((e) => e.to === 'disconnected'), 5000, 'lost');
    await waitFor(() => got.messages.length === 3, 5000, 'recovered');
    expect(seqs(got.messages)).toEqual([1, 2, 3]);
    expect(s.last).not.toBe(first);
    expect(s.last.sent('join')[0]).toMatchObject({ room: 'r', since: { seq: 1, epoch: s.room('r').epoch } });
    expect(s.last.sent('connect')[0]).toMatchObject({ user: 'alice', protocol: 1 });
    const lost = states.find((e) => e.to === 'disconnected')!;
    expect(lost.error).toMatchObject({ code: 'disconnected', closeCode: 1006 });
    const re = states.find((e) => e.to === 'reconnecting')!;
    expect(re.attempt).toBe(1);
    expect(re.delayMs).toBeGreaterThanOrEqual(0);
    expect(re.delayMs).toBeLessThan(20);
    expect(got.resets).toEqual([]);
  });

  it('recovery reset → reset event with the server position; reloadFromHistory returns the page up to it', async () => {
    const s = await server();
    const { c } = client(s);
    const room = c.room('r');
    const got = collect(room);
    await waitFor(() => room.joined, 5000, 'joined');
    s.append('r', 1);
    await waitFor(() => got.messages.length === 1, 5000, 'first');
    const old = s.room('r').epoch;
    s.last.drop();
    // same tick as the drop: the rejoin cannot come first
    const epoch = s.newEpoch('r');
    for (let i = 0; i < 5; i++) s.append('r', `n${i}`);
    let reloaded: Message[] = [];
    room.on('reset', () => {
      void room.reloadFromHistory({ limit: 3 }).then((ms) => {
        reloaded = ms;
      });
    });
    await waitFor(() => reloaded.length === 3, 5000, 'reloaded');
    expect(got.resets).toEqual([{ room: 'r', position: { seq: 5, epoch }, previous: { seq: 1, epoch: old }, reason: 'epoch' }]);
    expect(seqs(reloaded)).toEqual([3, 4, 5]);
    s.append('r', 'live');
    await waitFor(() => got.messages.length === 2, 5000, 'live after reset');
    expect(got.messages[1]).toMatchObject({ seq: 6, epoch });
  });

  it('a room created with since resumes from a persisted position', async () => {
    const s = await server();
    s.append('r', 1);
    s.append('r', 2);
    s.append('r', 3);
    const { c } = client(s);
    const room = c.room('r', { since: { seq: 1, epoch: s.room('r').epoch } });
    const got = collect(room);
    await waitFor(() => got.messages.length === 2, 5000, 'recovered');
    expect(seqs(got.messages)).toEqual([2, 3]);
  });
});

describe('reconnect policy', () => {
  it('honours notice.reconnectAfterMs', async () => {
    const s = await server();
    const { c, states } = client(s);
    await waitFor(() => c.state === 'connected', 5000, 'connected');
    s.last.send({ type: 'notice', code: 'reconnect', reason: 'node shutting down', reconnectAfterMs: 300 });
    s.last.close(4001, 'shutdown');
    const t0 = Date.now();
    await waitFor(() => s.conns.length === 2 && c.state === 'connected', 5000, 'reconnected');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    const reconnecting = states.find((e) => e.to === 'reconnecting')!;
    expect(reconnecting).toMatchObject({ attempt: 1, error: { closeCode: 4001 } });
    // counted from the notice's arrival, which came just before the close
    expect(reconnecting.delayMs).toBeGreaterThanOrEqual(250);
    expect(reconnecting.delayMs).toBeLessThanOrEqual(300);
  });

  it("counts notice.reconnectAfterMs from the notice: a node that closes when the delay ended is left at once (the backoff's jitter only)", async () => {
    const s = await server();
    const { c, states } = client(s, { backoff: { minMs: 50, maxMs: 200 } });
    await waitFor(() => c.state === 'connected', 5000, 'connected');
    const first = s.last;
    first.send({ type: 'notice', code: 'reconnect', reason: 'node shutting down', reconnectAfterMs: 400 });
    // As a draining node does: the close comes once the notice's delay has passed (a lower bound, with a margin
    // for a slow client to read the notice).
    await sleep(800);
    first.close(4001, 'node shutting down');
    await waitFor(() => s.conns.length === 2 && c.state === 'connected', 5000, 'reconnected');
    const reconnecting = states.find((e) => e.to === 'reconnecting')!;
    expect(reconnecting.error).toMatchObject({ closeCode: 4001 });
    // not another 400 ms after the close: the first attempt's backoff window (50 ms) alone
    expect(reconnecting.delayMs).toBeLessThan(50);
  });

  it('terminal close codes end in closed with a typed error; pending publishes reject', async () => {
    const s = await server();
    const { c, states } = client(s);
    const room = c.room('r');
    await waitFor(() => room.joined, 5000, 'joined');
    s.interceptor = (_conn, f) => f.type === 'publish'; // never acked
    const pending = room.publish('x');
    s.last.close(4501, 'too many invalid frames');
    await expect(pending).rejects.toMatchObject({ code: 'closed', cause: { code: 'terminal_close', closeCode: 4501 } });
    await waitFor(() => c.state === 'closed', 5000, 'closed');
    expect(states[states.length - 1]).toMatchObject({ to: 'closed', error: { code: 'terminal_close', retryable: false } });
    await new Promise((r) => setTimeout(r, 100));
    expect(s.conns).toHaveLength(1);
    expect(() => c.room('other')).toThrow(expect.objectContaining({ code: 'closed' }));
  });

  it('1002, 1003, 1007 and 1008 are terminal (terminal_close with the code); 1011 reconnects', async () => {
    for (const code of [1002, 1003, 1007, 1008]) {
      const s = await server();
      const { c, states } = client(s);
      await waitFor(() => c.state === 'connected', 5000, 'connected');
      s.last.close(code, 'refused');
      await waitFor(() => c.state === 'closed', 5000, `closed after ${code}`);
      expect(states[states.length - 1]!.error).toMatchObject({ code: 'terminal_close', closeCode: code, retryable: false });
    }
    const s = await server();
    const { c, states } = client(s);
    await waitFor(() => c.state === 'connected', 5000, 'connected');
    s.last.close(1011, 'unexpected condition');
    await waitFor(() => s.conns.length === 2 && c.state === 'connected', 5000, 'reconnected after 1011');
    expect(states.find((e) => e.to === 'reconnecting')).toMatchObject({ attempt: 1, error: { code: 'disconnected', closeCode: 1011 } });
  });

  it('unauthorized + 4500 is terminal with the server error', async () => {
    const s = await server();
    s.interceptor = (conn, f) => {
      if (f.type !== 'connect') return false;
      conn.send({ type: 'error', id: f.id, code: 'unauthorized', message: 'invalid token', retryable: false });
      conn.close(4500, 'unauthorized');
      return true;
    };
    const { c, states } = client(s, { token: 'bad' });
    await waitFor(() => c.state === 'closed', 5000, 'closed');
    expect(states.map((e) => e.to)).toEqual(['connecting', 'closed']);
    expect(states[1]!.error).toMatchObject({ code: 'unauthorized', message: 'invalid token', retryable: false });
  });

  it('token_expired (4005) gets a fresh token from getToken; with a static token it is terminal', async () => {
    const s = await server();
    s.interceptor = (conn, f) => {
      if (f.type !== 'connect' || f.token !== 'stale') return false;
      conn.send({ type: 'error', id: f.id, code: 'token_expired', message: 'token has expired', retryable: true });
      conn.close(4005, 'token expired');
      return true;
    };
    const tokens = ['stale', 'fresh'];
    const { c } = client(s, { getToken: () => tokens.shift() ?? 'fresh', user: undefined });
    await waitFor(() => c.state === 'connected', 5000, 'connected with the fresh token');
    expect(s.conns.map((x) => x.sent('connect')[0]!.token)).toEqual(['stale', 'fresh']);

    const { c: c2 } = client(s, { token: 'stale', user: undefined });
    await waitFor(() => c2.state === 'closed', 5000, 'closed');
  });

  it('getToken throwing is terminal (token_unavailable)', async () => {
    const s = await server();
    const { c, states } = client(s, { getToken: () => Promise.reject(new Error('auth server down')), user: undefined });
    await waitFor(() => c.state === 'closed', 5000, 'closed');
    expect(states[states.length - 1]!.error).toMatchObject({ code: 'token_unavailable', cause: { message: 'auth server down' } });
    expect(s.conns).toHaveLength(0);
  });

  it('backs off with growing full-jitter windows while the server is unreachable', async () => {
    const s = await server();
    const url = s.url;
    await s.close();
    servers.splice(0);
    const c = connect(url, { WebSocket, backoff: { minMs: 10, maxMs: 80, factor: 2 } });
    clients.push(c);
    const attempts: StateChange[] = [];
    c.on('state', (e) => {
      if (e.to === 'reconnecting') attempts.push(e);
    });
    await waitFor(() => attempts.length >= 6, 10_000, 'six attempts');
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4, 5, 6, ...attempts.slice(6).map((a) => a.attempt)]);
    attempts.forEach((a, i) => expect(a.delayMs).toBeLessThan(Math.min(80, 10 * 2 ** i)));
    expect(c.state).toBe('reconnecting');
  });

  it('the watchdog drops a connection that goes silent and reconnects', async () => {
    const s = await server({ pingIntervalMs: 100 });
    const { c, states } = client(s, { watchdog: { graceMs: 100 } });
    await waitFor(() => c.state === 'connected', 5000, 'connected');
    // The first connection goes quiet (no pings, no replies) without closing, like a paused server.
    const quiet = s.last;
    s.interceptor = (conn) => conn === quiet;
    (quiet as unknown as { send: () => void }).send = () => undefined;
    await waitFor(() => states.some((e) => e.to === 'reconnecting'), 5000, 'watchdog');
    expect(states.find((e) => e.to === 'disconnected')!.error).toMatchObject({ code: 'timeout', message: expect.stringContaining('watchdog') });
    await waitFor(() => c.state === 'connected' && s.conns.length >= 2, 5000, 'reconnected');
  });

  it('browser offline/online events drop and restore the connection', async () => {
    const target = new EventTarget();
    vi.stubGlobal('addEventListener', target.addEventListener.bind(target));
    vi.stubGlobal('removeEventListener', target.removeEventListener.bind(target));
    const s = await server();
    const { c, states } = client(s);
    await waitFor(() => c.state === 'connected', 5000, 'connected');
    target.dispatchEvent(new Event('offline'));
    expect(c.state).toBe('disconnected');
    await new Promise((r) => setTimeout(r, 100));
    expect(s.conns).toHaveLength(1);
    target.dispatchEvent(new Event('online'));
    await waitFor(() => c.state === 'connected' && s.conns.length === 2, 5000, 'back online');
    expect(states.map((e) => e.to)).toEqual(['connecting', 'connected', 'disconnected', 'reconnecting', 'connected']);
  });
});

describe('publishing', () => {
  it('offline publishes are queued with their idem and sent once the room is rejoined; a full queue rejects', async () => {
    const s = await server();
    const { c } = client(s, { offlineQueue: { max: 3 } });
    const room = c.room('r');
    const acks = [room.publish('a'), room.publish('b', { idem: 'my-idem' }), room.publish('c')];
    await expect(room.publish('d')).rejects.toMatchObject({ code: 'offline_queue_full', retryable: true, name: 'SwitchboardClientError' });
    const results = await Promise.all(acks);
    expect(results.map((r) => r.seq)).toEqual([1, 2, 3]);
    const conn = s.last;
    const order = conn.frames.map((f) => f.type);
    expect(order.indexOf('join')).toBeLessThan(order.indexOf('publish'));
    expect(conn.sent('publish').map((f) => f.idem)).toEqual([expect.stringMatching(/^sb-/), 'my-idem', expect.stringMatching(/^sb-/)]);
  });

  it('a publish whose ack is lost to a disconnect is resent with the same idem and stored once', async () => {
    const s = await server();
    const { c } = client(s);
    const room = c.room('r');
    await waitFor(() => room.joined, 5000, 'joined');
    let first: FakeConn | null = null;
    s.interceptor = (conn, f) => {
      if (f.type !== 'publish' || first !== null) return false;
      first = conn;
      s.room('r').idem.set(`${conn.user}\u0000${String(f.idem)}`, s.append('r', f.data, { from: conn.user })); // stored…
      conn.drop(); // …but the ack never arrives
      return true;
    };
    const ack = await room.publish('once');
    expect(ack).toMatchObject({ seq: 1, duplicate: true });
    const idems = s.conns.flatMap((x) => x.sent('publish').map((f) => f.idem));
    expect(idems).toHaveLength(2);
    expect(idems[0]).toBe(idems[1]);
    expect(s.room('r').messages).toHaveLength(1);
  });

  it('unavailable and timeouts are retried with the same idem; non-retryable errors reject', async () => {
    const s = await server();
    const { c } = client(s, { requestTimeoutMs: 200 });
    const room = c.room('r');
    await waitFor(() => room.joined, 5000, 'joined');
    let n = 0;
    s.interceptor = (conn, f) => {
      if (f.type !== 'publish') return false;
      n++;
      if (f.data === 'forbidden') {
        conn.send({ type: 'error', id: f.id, code: 'forbidden', message: 'no', retryable: false, room: 'r' });
        return true;
      }
      if (n === 1) conn.send({ type: 'error', id: f.id, code: 'unavailable', message: 'durable log down', retryable: true, room: 'r' });
      return n <= 2; // 1: unavailable, 2: no reply (timeout), 3: stored
    };
    const ack = await room.publish('retry me');
    expect(ack.seq).toBe(1);
    const idems = s.last.sent('publish').map((f) => f.idem);
    expect(new Set(idems).size).toBe(1);
    expect(idems).toHaveLength(3);
    await expect(room.publish('forbidden')).rejects.toMatchObject({ code: 'forbidden', retryable: false, room: 'r' });
  });

  it('keeps requests in flight under maxInFlight', async () => {
    const s = await server();
    const { c } = client(s, { maxInFlight: 5 });
    const room = c.room('r');
    await waitFor(() => room.joined, 5000, 'joined');
    const held: [FakeConn, Frame][] = [];
    s.interceptor = (conn, f) => {
      if (f.type !== 'publish') return false;
      held.push([conn, f]);
      return true;
    };
    const acks = Array.from({ length: 20 }, (_, i) => room.publish(i));
    let maxSeen = 0;
    while (held.length > 0 || s.room('r').messages.length < 20) {
      await new Promise((r) => setTimeout(r, 10));
      const batch = held.splice(0);
      maxSeen = Math.max(maxSeen, batch.length);
      for (const [conn, f] of batch) s.handle(conn, f);
      if (s.room('r').messages.length >= 20) break;
    }
    expect((await Promise.all(acks)).map((a) => a.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(maxSeen).toBeLessThanOrEqual(5);
    expect(maxSeen).toBeGreaterThan(0);
  });

  it('a join refused for good fails the room: error event, queued publishes reject', async () => {
    const s = await server();
    s.interceptor = (conn, f) => {
      if (f.type !== 'join') return false;
      conn.send({ type: 'error', id: f.id, code: 'forbidden', message: 'no join', retryable: false, room: f.room });
      return true;
    };
    const { c } = client(s);
    const room = c.room('secret');
    const errors: unknown[] = [];
    room.on('error', (e) => errors.push(e));
    await expect(room.publish('x')).rejects.toMatchObject({ code: 'forbidden' });
    expect(errors).toHaveLength(1);
    expect(room.left).toBe(true);
    expect(c.room('secret')).not.toBe(room);
  });

  it('reads wait for a connection, and one cut off by a disconnect is sent again on the next', async () => {
    const s = await server();
    let dropped = false;
    s.interceptor = (conn, f) => {
      if (f.type !== 'presence' || dropped) return false;
      dropped = true;
      conn.drop();
      return true;
    };
    const { c } = client(s);
    const room = c.room('r');
    const early = room.history(); // before any connection
    const members = await room.presence(); // first attempt cut off
    expect(members.map((m) => m.user)).toEqual(['alice']);
    expect((await early).messages).toEqual([]);
    expect(s.conns.length).toBe(2);
  });

  it('history requests time out with a typed error', async () => {
    const s = await server();
    s.interceptor = (_conn, f) => f.type === 'history';
    const { c } = client(s, { requestTimeoutMs: 100 });
    await expect(c.room('r').history()).rejects.toMatchObject({ code: 'timeout', retryable: true, room: 'r' });
  });

  it('close() rejects what waits and stops reconnecting', async () => {
    const s = await server();
    const { c, states } = client(s);
    const room = c.room('r');
    const p = room.publish('queued');
    c.close();
    await expect(p).rejects.toMatchObject({ code: 'closed' });
    expect(states.map((e) => e.to)).toEqual(['closed']);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.conns).toHaveLength(0);
  });
});
