/**
 * The JetStream durable log on a 3-server NATS JetStream cluster (throwaway servers on free ports) with
 * `--jetstream-replicas 3`, Redis, PostgreSQL and 2 node processes given all three NATS URLs. 3,000
 * publishes over 6 rooms through POST /api/publish with idempotency ids. While they run, the nats-server
 * leading both the stream and the history writers' consumer is killed (-9); a publish that fails is
 * retried with the same idem (through the other node, as a client would) until acked. 500 more are
 * published with that server down (history must keep being written meanwhile), then it is restarted
 * (same ports, same store dir), and once it is current again 500 more are published. Afterwards every
 * acked message is in the stream and in PostgreSQL exactly once at its acked seq, seqs per room are 1..N,
 * and clients subscribed throughout (one per node) and one resuming with `since` got every message once,
 * in order. Prints what the failover looked like (failed attempts, election and stall times).
 */
import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startJetStreamCluster, startPostgres, startRedisServer, waitForJetStreamMeta, type NatsServer, type TestServer } from '../helpers/servers.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const STREAM = 'SWITCHBOARD';
const CONSUMER = 'history-writer';
const ROOMS = Array.from({ length: 6 }, (_, i) => `jsc-${i}`);
/** Keys [0, 1000) before the kill, [1000, 2000) while it happens, [2000, 2500) with the server down, [2500, 3000) after its restart. */
const PHASES = [1000, 2000, 2500, 3000] as const;
const TOTAL = PHASES[3];
const CONCURRENCY = 16;

const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];
let nats: NatsServer[];
let redis: TestServer;
let db: TestServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

const roomOf = (k: number): string => ROOMS[k % ROOMS.length]!;

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

const storedCount = async (): Promise<number> => Number((await sql<{ n: string }>("SELECT count(*) AS n FROM messages WHERE room LIKE 'jsc-%'"))[0]!.n);

/** Stream info, or null while JetStream cannot answer (no leader, the connected server just died). */
async function streamInfo(): Promise<StreamInfo | null> {
  return jsm.streams.info(STREAM).catch(() => null);
}

/** The history writers' consumer's leader, or '' while it has none (or JetStream cannot answer). */
async function consumerLeader(): Promise<string> {
  return (await jsm.consumers.info(STREAM, CONSUMER).catch(() => null))?.cluster?.leader ?? '';
}

/**
 * Moves the consumer's leader onto the stream leader's server (stepping it down, which elects another
 * peer at random, until they coincide), so killing that server fails over both: the publish path and the
 * history writers' pull. Returns that server's name.
 */
async function colocateLeaders(): Promise<string> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    let stream = '';
    let consumer = '';
    await waitFor(
      async () => (stream = (await streamInfo())?.cluster?.leader ?? '') !== '' && (consumer = await consumerLeader()) !== '',
      15_000,
      'stream and consumer leaders',
      50,
    );
    if (stream === consumer) return stream;
    await nc.request(`$JS.API.CONSUMER.LEADER.STEPDOWN.${STREAM}.${CONSUMER}`, '', { timeout: 5_000 }).catch(() => undefined);
    await waitFor(async () => ![consumer, ''].includes(await consumerLeader()), 15_000, 'a new consumer leader', 50);
  }
  throw new Error('could not move the consumer leader onto the stream leader in 20 step-downs');
}

beforeAll(async () => {
  nats = await startJetStreamCluster(3);
  redis = await startRedisServer();
  db = await startPostgres();
  servers.push(...nats, redis, db);
  for (let i = 1; i <= 2; i++) {
    nodes.push(
      await startNodeProcess({
        args: [
          '--node-id',
          `node-${i}`,
          '--nats',
          nats.map((s) => s.url).join(','),
          '--redis',
          redis.url,
          '--database',
          db.url,
          '--jetstream-replicas',
          '3',
          '--jetstream-ack-wait-ms',
          '3000',
        ],
      }),
    );
  }
  nc = await natsConnect({ servers: nats.map((s) => s.url), maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  jsm = await jetstreamManager(nc, { timeout: 2_000 });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await nc?.close().catch(() => undefined);
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('JetStream durable log on a 3-server cluster, replicas 3', () => {
  it('killing the server leading the stream and its consumer mid-publish loses and duplicates no acked message; retries are stored once; history keeps being written', async () => {
    const initial = await streamInfo();
    expect(initial?.config.num_replicas).toBe(3);
    expect(initial?.cluster?.replicas ?? []).toHaveLength(2);

    // Subscribers: one per node for the whole test, and one that leaves before the kill and resumes after.
    const live = await Promise.all(nodes.map((n, i) => TestClient.connect(n.wsUrl, { user: `live-${i}` })));
    const away = await TestClient.connect(nodes[0]!.wsUrl, { user: 'away' });
    clients.push(...live, away);
    const epochs = new Map<string, string>();
    for (const c of [...live, away]) {
      for (const room of ROOMS) {
        const j = await c.request({ type: 'join', room });
        expect(j.type).toBe('joined');
        epochs.set(room, j.epoch as string);
      }
    }

    const acked = new Map<number, { room: string; seq: number; attempts: number }>();
    const failures: { key: number; at: number; tookMs: number; why: string }[] = [];
    let killedAt = 0;

    /** One POST /api/publish; the ack's seq, or why it failed. */
    const publishOnce = async (node: NodeProcess, key: number): Promise<{ seq: number } | { error: string }> => {
      try {
        const res = await fetch(`${node.url}/api/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ room: roomOf(key), from: 'pub', idem: `k${key}`, data: { key } }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json()) as { seq?: number; error?: { code?: string; message?: string } };
        if (res.status === 200 && typeof body.seq === 'number') return { seq: body.seq };
        return { error: `${res.status} ${body.error?.code ?? ''}` };
      } catch (err) {
        return { error: (err as Error).message };
      }
    };
    /** Publishes `key` until acked (giving up after 30 s), retrying with the same idem through the other node each time. */
    const publish = async (key: number): Promise<void> => {
      const deadline = Date.now() + 30_000;
      for (let attempt = 1; ; attempt++) {
        const t0 = Date.now();
        const r = await publishOnce(nodes[(key + attempt - 1) % nodes.length]!, key);
        if ('seq' in r) {
          acked.set(key, { room: roomOf(key), seq: r.seq, attempts: attempt });
          return;
        }
        failures.push({ key, at: Date.now(), tookMs: Date.now() - t0, why: r.error });
        if (Date.now() > deadline) throw new Error(`publish k${key} still failing after ${attempt} attempts: ${r.error}`);
        await sleep(100);
      }
    };
    const publishRange = async (from: number, to: number): Promise<void> => {
      let next = from;
      const worker = async (): Promise<void> => {
        while (next < to) await publish(next++);
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    };
    const ackedIn = (from: number, to: number): number => [...acked.keys()].filter((k) => k >= from && k < to).length;

    // Phase 1: all servers up.
    await publishRange(0, PHASES[0]);
    const before = await streamInfo();
    expect(before?.state.messages).toBe(PHASES[0]);
    const positions = new Map(ROOMS.map((room) => [room, Math.max(0, ...away.messages(room).map((m) => m.seq as number))]));
    away.close();

    // Phase 2: kill the server leading both the stream and the history writers' consumer while publishes are in flight.
    const leaderName = await colocateLeaders();
    const victim = nats.find((s) => s.serverName === leaderName)!;
    expect(victim, `leader ${leaderName} is one of ours`).toBeDefined();
    const phase2 = publishRange(PHASES[0], PHASES[1]);
    await waitFor(() => ackedIn(PHASES[0], PHASES[1]) >= 100, 60_000, 'phase 2 under way', 5);
    expect([(await streamInfo())?.cluster?.leader, await consumerLeader()]).toEqual([leaderName, leaderName]);
    // For the report: which nodes' JetStream connections the kill drops (the client picks a server at random).
    const connz = (await (await fetch(`${victim.monitorUrl!}/connz`)).json()) as { connections?: { name?: string }[] };
    const dropped = (connz.connections ?? []).map((c) => c.name ?? '').filter((n) => n.endsWith(' jetstream'));
    // For the report: the longest time PostgreSQL got no new row while some were due (a writer stall).
    let stallMs = 0;
    let watching = true;
    const watchHistory = (async () => {
      let last = -1;
      let since = Date.now();
      while (watching) {
        const n = await storedCount().catch(() => last);
        if (n !== last || n >= acked.size) [last, since] = [n, Date.now()];
        stallMs = Math.max(stallMs, Date.now() - since);
        await sleep(100);
      }
    })();
    killedAt = Date.now();
    await victim.kill();
    let newLeader = '';
    await waitFor(
      async () => {
        const i = await streamInfo();
        newLeader = i?.cluster?.leader ?? '';
        return newLeader !== '' && newLeader !== leaderName;
      },
      30_000,
      'a new stream leader',
      50,
    );
    const electedMs = Date.now() - killedAt;
    await phase2;

    // Phase 3: one server down, two of three replicas are a quorum.
    await publishRange(PHASES[1], PHASES[2]);
    const degraded = await streamInfo();
    expect(degraded?.state.messages).toBe(PHASES[2]);
    // The history writers pull again from the new consumer leader: what is acked so far reaches PostgreSQL
    // with the server still down. (With the client library's 30 s default pull expiry writing stalled for
    // 20–45 s after the kill, past this bound.)
    await waitFor(async () => (await storedCount()) >= PHASES[2], 15_000, 'history written after the failover', 100);
    const historyCaughtUpMs = Date.now() - killedAt;
    watching = false;
    await watchHistory;

    // Restart the killed server (same ports, same store dir): it rejoins and catches up.
    const restartAt = Date.now();
    await victim.restart();
    await waitForJetStreamMeta(nats, 30_000);
    await waitFor(
      async () => {
        const i = await streamInfo();
        const replicas = i?.cluster?.replicas ?? [];
        return replicas.length === 2 && replicas.every((r) => r.current && r.offline !== true && (r.lag ?? 0) === 0);
      },
      30_000,
      'the restarted server current on the stream again',
      100,
    );
    const caughtUpMs = Date.now() - restartAt;

    // Phase 4: all three back.
    await publishRange(PHASES[2], PHASES[3]);
    expect(acked.size).toBe(TOTAL);
    const after = await streamInfo();
    expect(after?.state.messages).toBe(TOTAL);

    // Every acked message in PostgreSQL: exactly once, at its acked seq; per room 1..N; nothing else.
    await waitFor(async () => (await storedCount()) >= TOTAL, 30_000, 'history written', 100);
    const rows = await sql<{ room: string; seq: string; key: number }>(
      "SELECT room, seq, (data->>'key')::int AS key FROM messages WHERE room LIKE 'jsc-%' ORDER BY room, seq",
    );
    expect(rows).toHaveLength(TOTAL);
    const rowByKey = new Map(rows.map((r) => [r.key, r]));
    expect(rowByKey.size).toBe(TOTAL);
    for (const [key, where] of acked) {
      const row = rowByKey.get(key);
      expect({ key, room: row?.room, seq: Number(row?.seq) }).toEqual({ key, room: where.room, seq: where.seq });
    }
    for (const room of ROOMS) {
      const inRoom = rows.filter((r) => r.room === room).map((r) => Number(r.seq));
      expect(inRoom).toEqual(inRoom.map((_, k) => k + 1));
      expect(inRoom).toHaveLength(TOTAL / ROOMS.length);
    }
    const keyAt = new Map(rows.map((r) => [`${r.room}/${r.seq}`, r.key]));

    // Live subscribers: every message of every room once, in seq order, the stored one at each seq.
    for (const c of live) {
      for (const room of ROOMS) {
        const n = TOTAL / ROOMS.length;
        await c.waitForMessages(room, n, 30_000);
        const got = c.messages(room);
        expect(got.map((m) => m.seq)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
        for (const m of got) expect((m.data as { key: number }).key).toBe(keyAt.get(`${room}/${m.seq}`));
      }
    }

    // The resuming client gets everything after its position, once, in order.
    const back = await TestClient.connect(nodes[1]!.wsUrl, { user: 'away' });
    clients.push(back);
    for (const room of ROOMS) {
      const since = positions.get(room)!;
      const j = await back.request({ type: 'join', room, since: { seq: since, epoch: epochs.get(room)! } });
      expect(j).toMatchObject({ type: 'joined', recovery: 'recovered', missed: TOTAL / ROOMS.length - since });
      const got = await back.waitForMessages(room, TOTAL / ROOMS.length - since, 30_000);
      expect(got.map((m: Frame) => m.seq)).toEqual(Array.from({ length: TOTAL / ROOMS.length - since }, (_, k) => since + k + 1));
      for (const m of got) expect((m.data as { key: number }).key).toBe(keyAt.get(`${room}/${m.seq}`));
    }

    const retried = [...acked.values()].filter((a) => a.attempts > 1);
    const after0 = (xs: number[]): string => (xs.length === 0 ? 'none' : `${Math.min(...xs)}..${Math.max(...xs)} ms`);
    console.log(
      `jetstream failover: killed ${leaderName}, leader of the stream and the consumer, (JetStream connections dropped: ${dropped.join(', ') || 'none'}); ` +
        `new leader ${newLeader} seen ${electedMs} ms after the kill; ${failures.length} failed attempts ` +
        `(${[...new Set(failures.map((f) => f.why))].join(', ')}; answered after ${after0(failures.map((f) => f.tookMs))}; ` +
        `${after0(failures.map((f) => f.at - killedAt))} after the kill) over ${retried.length} publishes, all acked on retry ` +
        `(at most ${Math.max(1, ...retried.map((a) => a.attempts))} attempts); history complete ${historyCaughtUpMs} ms after the kill (writing stalled at most ${stallMs} ms); restarted server current again ${caughtUpMs} ms after its restart`,
    );
  }, 60_000);
});
