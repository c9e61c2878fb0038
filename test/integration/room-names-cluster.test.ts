/**
 * Room names with Pusher's channel-name characters (`.` `=` `,` `;`) in cluster mode: two node processes on a
 * JetStream-enabled nats-server (NATS backplane, JetStream durable log), Redis and PostgreSQL (throwaway, free
 * ports). A `.` must not split the room's NATS subject token (protocol/names.ts `roomToken`): look-alike rooms
 * never see each other's messages across nodes, the subjects on the wire are one token per room, and a dotted
 * room works end to end: live across nodes, history (from the Redis window and from PostgreSQL), recovery from
 * the window and from PostgreSQL, with the message's `event`.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];
let nats: TestServer;
let redis: TestServer;
let db: TestServer;
let nc: NatsConnection;
/** Every subject seen on `sb.r.default.>` and `sb.d.default.>`. */
const subjects = new Set<string>();

const WINDOW = 3;
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const seqs = (fs: Frame[]): number[] => fs.map((f) => f.seq as number);

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

async function client(n: NodeProcess, user: string): Promise<TestClient> {
  const c = await TestClient.connect(n.wsUrl, { user });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  redis = await startRedisServer();
  db = await startPostgres();
  servers.push(nats, redis, db);
  for (let i = 1; i <= 2; i++) {
    nodes.push(
      await startNodeProcess({
        args: ['--node-id', `node-${i}`, '--nats', nats.url, '--redis', redis.url, '--database', db.url, '--recovery-window', String(WINDOW)],
      }),
    );
  }
  nc = await connect({ servers: nats.url });
  for (const s of ['sb.r.default.>', 'sb.d.default.>'])
    nc.subscribe(s, {
      callback: (_err, m) => {
        subjects.add(m.subject);
      },
    });
  await nc.flush();
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await nc?.close();
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('room names with Pusher characters across nodes (NATS backplane, JetStream)', () => {
  it('look-alike rooms (x.y, x_y, x-y, x:y, x;y, x,y, x=y, x~y, x@y) never see each other across nodes', async () => {
    const names = ['x.y', 'x_y', 'x-y', 'x:y', 'x;y', 'x,y', 'x=y', 'x~y', 'x@y', 'x.y.z', 'x.y_z'];
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const pub = await client(a, 'pub');
    const sub = await client(b, 'sub');
    for (const room of names) {
      expect(await pub.request({ type: 'join', room })).toMatchObject({ type: 'joined', seq: 0 });
      expect(await sub.request({ type: 'join', room })).toMatchObject({ type: 'joined', seq: 0 });
    }
    for (const [i, room] of names.entries()) {
      for (let k = 1; k <= 2; k++) expect(await pub.request({ type: 'publish', room, data: { room, k }, event: `e-${i}` })).toMatchObject({ seq: k });
    }
    for (const room of names) await sub.waitForMessages(room, 2);
    const messages = sub.frames.filter((f) => f.type === 'message');
    expect(messages).toHaveLength(2 * names.length);
    for (const [i, room] of names.entries()) {
      const got = sub.messages(room);
      expect(got.map((m) => [m.seq, m.data, m.event])).toEqual([
        [1, { room, k: 1 }, `e-${i}`],
        [2, { room, k: 2 }, `e-${i}`],
      ]);
    }
    // One subject token per room: `.` is written as `%`, the other characters stay.
    await waitFor(() => subjects.has('sb.r.default.x%y%z') && subjects.has('sb.d.default.x%y%z'), 5_000, 'the dotted subjects');
    for (const room of names) {
      const token = room.replaceAll('.', '%');
      expect(subjects.has(`sb.r.default.${token}`)).toBe(true);
      expect(subjects.has(`sb.d.default.${token}`)).toBe(true);
    }
    for (const s of subjects) expect(s.split('.')).toHaveLength(4);
    // The JetStream stream holds the newest message of x.y under its own subject, with its event.
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage('SWITCHBOARD', { last_by_subj: 'sb.d.default.x%y' });
    expect(last?.json<Record<string, unknown>>()).toMatchObject({ room: 'x.y', seq: 2, event: 'e-0', data: { room: 'x.y', k: 2 } });
  });

  it('a dotted room works end to end: live across nodes, history and recovery (window and PostgreSQL), with events', async () => {
    const room = 'private-App.Models.User.1';
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const pub = await client(a, 'u1-pub');
    const sub = await client(b, 'u1-sub');
    await pub.request({ type: 'join', room });
    await sub.request({ type: 'join', room });
    await pub.request({ type: 'publish', room, data: 1, event: 'App\\Events\\Shipped' });
    await pub.request({ type: 'publish', room, data: 2 });
    const live = await sub.waitForMessages(room, 2);
    expect(live.map((m) => [m.seq, m.event, m.data])).toEqual([
      [1, 'App\\Events\\Shipped', 1],
      [2, undefined, 2],
    ]);
    expect(Object.keys(live[1]!)).not.toContain('event');

    // Recovery from the Redis window (fewer missed than the window).
    sub.close();
    await pub.request({ type: 'publish', room, data: 3, event: 'client-typing' });
    const back = await client(b, 'u1-sub');
    expect(await back.request({ type: 'join', room, since: { seq: 2, epoch: live[1]!.epoch } })).toMatchObject({ recovery: 'recovered', missed: 1 });
    expect((await back.waitForMessages(room, 1)).map((m) => [m.seq, m.event])).toEqual([[3, 'client-typing']]);

    // Recovery beyond the window: from PostgreSQL, once the history writer stored the messages.
    back.close();
    for (let i = 4; i <= 10; i++) await pub.request({ type: 'publish', room, data: i, ...(i % 2 === 0 ? { event: `even-${i}` } : {}) });
    await waitFor(
      async () => Number((await sql<{ n: string }>('SELECT count(*) AS n FROM messages WHERE room = $1', [room]))[0]!.n) === 10,
      30_000,
      'all 10 messages in PostgreSQL',
      100,
    );
    const rows = await sql<{ seq: string; event: string | null }>('SELECT seq, event FROM messages WHERE room = $1 ORDER BY seq', [room]);
    expect(rows.map((r) => [Number(r.seq), r.event])).toEqual(
      range(1, 10).map((s) => [s, s === 1 ? 'App\\Events\\Shipped' : s === 3 ? 'client-typing' : s >= 4 && s % 2 === 0 ? `even-${s}` : null]),
    );
    const later = await client(b, 'u1-sub');
    expect(await later.request({ type: 'join', room, since: { seq: 3, epoch: live[1]!.epoch } })).toMatchObject({ recovery: 'recovered', missed: 7 });
    const recovered = await later.waitForMessages(room, 7);
    expect(seqs(recovered)).toEqual(range(4, 10));
    expect(recovered.map((m) => m.event)).toEqual([`even-4`, undefined, `even-6`, undefined, `even-8`, undefined, `even-10`]);
    for (const m of recovered.filter((f) => (f.seq as number) % 2 === 1)) expect(Object.keys(m)).not.toContain('event');

    // History from either node, over WebSocket and HTTP (percent-encoded path), across the window and the store.
    const page = await later.request({ type: 'history', room, limit: 20 });
    expect((page.messages as Frame[]).map((m) => [m.seq, m.event ?? null])).toEqual(rows.map((r) => [Number(r.seq), r.event]));
    const res = await fetch(`${a.url}/api/rooms/${encodeURIComponent(room)}/history?limit=20`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { room: string; messages: Frame[] };
    expect(body.room).toBe(room);
    expect(body.messages.map((m) => [m.seq, m.event ?? null])).toEqual(rows.map((r) => [Number(r.seq), r.event]));
  });
});
