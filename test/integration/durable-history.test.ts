/**
 * Durable history over real servers: 3 node processes on a JetStream-enabled nats-server, Redis and
 * PostgreSQL (throwaway, free ports). PostgreSQL is stopped for 20 s while the nodes take 10,000
 * publishes across 20 rooms; a node started during the outage serves live traffic with history
 * degraded (newest page from the Redis window, older pages 503); a node running a history writer is killed (-9) during the catch-up; afterwards every acked
 * message is in PostgreSQL exactly once, with contiguous seqs per room in each publisher's order. Then a
 * client away longer than the Redis window recovers from PostgreSQL.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const servers: TestServer[] = [];
const nodes: NodeProcess[] = [];
const clients: TestClient[] = [];
let nats: TestServer;
let redis: TestServer;
let db: TestServer;

const ROOMS = Array.from({ length: 20 }, (_, i) => `dur-${i}`);
const TOTAL = 10_000;
const OUTAGE_MS = 20_000;
const WINDOW = 20;

async function startClusterNode(i: number): Promise<NodeProcess> {
  const n = await startNodeProcess({
    args: [
      '--node-id',
      `node-${i}`,
      '--nats',
      nats.url,
      '--redis',
      redis.url,
      '--database',
      db.url,
      '--recovery-window',
      String(WINDOW),
      '--jetstream-ack-wait-ms',
      '3000',
      '--history-batch',
      '500',
    ],
  });
  nodes.push(n);
  return n;
}

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Rows in `messages`, or -1 while PostgreSQL does not answer (stopped, starting up). */
const storedCount = async (): Promise<number> =>
  sql<{ n: string }>('SELECT count(*) AS n FROM messages').then(
    (r) => Number(r[0]!.n),
    () => -1,
  );

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  redis = await startRedisServer();
  db = await startPostgres();
  servers.push(nats, redis, db);
  for (let i = 1; i <= 3; i++) await startClusterNode(i);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.kill();
  for (const s of servers) await s.dispose();
});

describe('durable history', () => {
  it('a 20 s PostgreSQL outage under 10,000 publishes and a writer killed mid catch-up lose and duplicate nothing', async () => {
    const pubs = await Promise.all(nodes.map((n, i) => TestClient.connect(n.wsUrl, { user: `pub-${i}` })));
    clients.push(...pubs);
    for (const c of pubs) for (const room of ROOMS) expect((await c.request({ type: 'join', room })).type).toBe('joined');
    const acked = new Map<string, { room: string; seq: number }>();
    const failed = new Set<string>();
    let sent = 0;
    // Each publisher keeps up to 32 publishes in flight, spread over the outage (~600/s in all).
    const publisher = async (c: TestClient, p: number): Promise<void> => {
      const share = Math.floor(TOTAL / pubs.length) + (p < TOTAL % pubs.length ? 1 : 0);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < share) {
          const i = next++;
          const key = `${p}:${i}`;
          const room = ROOMS[(i + p) % ROOMS.length]!;
          sent += 1;
          const reply = await c
            .request({ type: 'publish', room, data: { key, p, i } }, 30_000)
            .catch((e: Error) => ({ type: 'error', message: e.message }) as Frame);
          if (reply.type === 'ack') acked.set(key, { room, seq: reply.seq as number });
          else failed.add(key);
          await sleep(150);
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
    };
    const publishing = Promise.all(pubs.map((c, p) => publisher(c, p)));

    await waitFor(() => acked.size >= 500, 30_000, 'publishing under way');
    await waitFor(async () => (await storedCount()) > 0, 30_000, 'history written before the outage', 100);
    // A room the sequencer already knows (a brand-new room cannot be sequenced while PostgreSQL is down:
    // neither Redis nor JetStream could tell whether stored history exists for it).
    const w = await TestClient.connect(nodes[1]!.wsUrl, { user: 'w' });
    clients.push(w);
    await w.request({ type: 'join', room: 'live-during-outage' });
    expect((await w.request({ type: 'publish', room: 'live-during-outage', data: 'before' })).type).toBe('ack');
    await db.stop();
    const outageStart = Date.now();

    // A node started while PostgreSQL is down: live traffic works, /readyz shows history degraded, history is 503.
    const late = await startClusterNode(4);
    const ready = (await (await fetch(`${late.url}/readyz`)).json()) as { status: string; checks: { history: { ok: boolean; detail?: string } } };
    expect(ready.status).toBe('ready');
    expect(ready.checks.history.ok).toBe(false);
    // The newest page comes from the Redis window; older pages need PostgreSQL: 503.
    const newest = await fetch(`${late.url}/api/rooms/dur-0/history?limit=10`);
    expect(newest.status).toBe(200);
    const newestPage = (await newest.json()) as { messages: { seq: number }[] };
    expect(newestPage.messages).toHaveLength(10);
    const top = newestPage.messages[9]!.seq;
    expect(newestPage.messages.map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, k) => top - 9 + k));
    const hist = await fetch(`${late.url}/api/rooms/dur-0/history?before=2&limit=1`);
    expect(hist.status).toBe(503);
    expect(((await hist.json()) as { error: { code: string } }).error?.code ?? 'unavailable').toBe('unavailable');
    const [x, y] = [await TestClient.connect(late.wsUrl, { user: 'x' }), await TestClient.connect(nodes[0]!.wsUrl, { user: 'y' })];
    clients.push(x, y);
    await y.request({ type: 'join', room: 'live-during-outage' });
    await x.request({ type: 'join', room: 'live-during-outage' });
    const liveAck = await x.request({ type: 'publish', room: 'live-during-outage', data: 'pg is down' });
    expect(liveAck.type).toBe('ack');
    expect((await y.waitForMessages('live-during-outage', 1))[0]).toMatchObject({ seq: 2, data: 'pg is down' });
    const protoHistory = await x.request({ type: 'history', room: 'dur-0', before: 2, limit: 1 });
    expect(protoHistory).toMatchObject({ type: 'error', code: 'unavailable' });

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
    const lagDuring = await fetch(`${nodes[0]!.url}/metrics`).then((r) => r.text());
    const lagMessages = Number(
      /^switchboard_history_lag_messages\{[^}]*\} (\d+)/m.exec(lagDuring)?.[1] ?? /^switchboard_history_lag_messages (\d+)/m.exec(lagDuring)?.[1],
    );
    expect(lagMessages).toBeGreaterThan(0);
    // Every publish was answered while PostgreSQL was down (JetStream holds them).
    await publishing;
    expect(sent).toBe(TOTAL);
    expect(acked.size + failed.size).toBe(TOTAL);
    const outageMs = Date.now() - outageStart;
    await db.restart();

    // Kill -9 a node running a history writer while the backlog is being written.
    let before = -1;
    await waitFor(async () => (before = await storedCount()) >= 0, 30_000, 'postgresql answering', 20);
    await waitFor(async () => (await storedCount()) > before, 30_000, 'catch-up started', 20);
    await nodes[2]!.kill();
    expect(outageMs).toBeGreaterThanOrEqual(OUTAGE_MS);

    // Everything acked reaches PostgreSQL (the killed writer's unacked deliveries come back after ack wait).
    const all = new Set([...acked.keys()]);
    await waitFor(
      async () => {
        const keys = new Set((await sql<{ key: string }>("SELECT data->>'key' AS key FROM messages WHERE room LIKE 'dur-%'")).map((r) => r.key));
        return [...all].every((k) => keys.has(k));
      },
      60_000,
      'every acked message stored',
      250,
    );

    const rows = await sql<{ room: string; seq: string; key: string; p: string; i: string }>(
      "SELECT room, seq, data->>'key' AS key, data->>'p' AS p, data->>'i' AS i FROM messages WHERE room LIKE 'dur-%' ORDER BY room, seq",
    );
    const byKey = new Map<string, number>();
    for (const r of rows) byKey.set(r.key, (byKey.get(r.key) ?? 0) + 1);
    // Exactly once: every acked message once, at the seq its ack named; nothing stored twice.
    const rowOf = new Map(rows.map((r) => [r.key, r]));
    for (const [key, where] of acked) {
      expect(byKey.get(key), key).toBe(1);
      const row = rowOf.get(key)!;
      expect({ room: row.room, seq: Number(row.seq) }).toEqual(where);
    }
    expect([...byKey.values()].every((n) => n === 1)).toBe(true);
    // Nothing unacked is claimed as sent: every stored row is one of our publishes, and the ones that
    // failed (if any) are only stored if the sequencer had assigned them a seq (never acked, never lost acked ones).
    for (const r of rows) expect(acked.has(r.key) || failed.has(r.key)).toBe(true);
    // Seq order per room: contiguous from 1.
    for (const room of ROOMS) {
      const inRoom = rows.filter((r) => r.room === room);
      expect(inRoom.map((r) => Number(r.seq))).toEqual(inRoom.map((_, k) => k + 1));
    }
    expect(failed.size).toBe(0);
  }, 180_000);

  it('a client away longer than the Redis window but within recoveryMaxGap recovers from PostgreSQL, in order, once', async () => {
    const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    const c = await TestClient.connect(live[0]!.wsUrl, { user: 'away' });
    clients.push(c);
    const joined = await c.request({ type: 'join', room: 'away' });
    const pub = await TestClient.connect(live[1]!.wsUrl, { user: 'writer' });
    clients.push(pub);
    await pub.request({ type: 'join', room: 'away' });
    for (let i = 1; i <= 5; i++) expect((await pub.request({ type: 'publish', room: 'away', data: i })).type).toBe('ack');
    await c.waitForMessages('away', 5);
    const last = { seq: 5, epoch: joined.epoch as string };
    c.close();
    const missed = WINDOW * 3;
    const acks = await Promise.all(Array.from({ length: missed }, (_, k) => pub.request({ type: 'publish', room: 'away', data: 6 + k })));
    for (const a of acks) expect(a.type).toBe('ack');
    const total = 5 + missed;
    await waitFor(
      async () => Number((await sql<{ n: string }>("SELECT max(seq) AS n FROM messages WHERE room = 'away'"))[0]!.n) === total,
      30_000,
      'history written',
      100,
    );

    const back = await TestClient.connect(live[1]!.wsUrl, { user: 'away' });
    clients.push(back);
    const rejoined = await back.request({ type: 'join', room: 'away', since: last });
    if (rejoined.recovery !== 'recovered')
      console.log(
        await fetch(`${live[1]!.url}/metrics`)
          .then((r) => r.text())
          .then((t) =>
            t
              .split('\n')
              .filter((l) => l.includes('recover'))
              .join('\n'),
          ),
      );
    expect(rejoined).toMatchObject({ type: 'joined', recovery: 'recovered', missed, seq: total });
    const got = await back.waitForMessages('away', missed);
    await sleep(200);
    expect(back.messages('away').map((m) => m.seq)).toEqual(Array.from({ length: missed }, (_, k) => 6 + k));
    // The data published as 6..65 in some order got seqs 6..65: each seq once.
    expect(new Set(got.map((m) => m.data)).size).toBe(missed);
    const metrics = await fetch(`${live[1]!.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/switchboard_recoveries_total\{[^}]*result="store"[^}]*\} [1-9]/);
  }, 60_000);

  it('`switchboard history-writer` shares the durable consumer, serves /metrics and /readyz, and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'history-writer', '--port', '0', '--host', '127.0.0.1', '--nats', nats.url, '--redis', redis.url, '--database', db.url, '--dev'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`history-writer did not listen: ${out}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    try {
      const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
      const pub = await TestClient.connect(live[0]!.wsUrl, { user: 'hw' });
      clients.push(pub);
      await pub.request({ type: 'join', room: 'hw' });
      // Enough messages that the shared consumer hands some to the standalone writer too.
      await waitFor(
        async () => {
          const acks = await Promise.all(Array.from({ length: 200 }, (_, k) => pub.request({ type: 'publish', room: 'hw', data: k })));
          expect(acks.every((a) => a.type === 'ack')).toBe(true);
          const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
          return /^switchboard_history_written_total(\{[^}]*\})? [1-9]/m.test(text);
        },
        60_000,
        'the standalone writer wrote a batch',
        500,
      );
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 90_000);
});
