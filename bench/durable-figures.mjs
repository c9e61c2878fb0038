#!/usr/bin/env node
/**
 * Durable-history figures (issue 5), measured on the engines in-process against throwaway servers started
 * here on free ports (nats-server -js, PostgreSQL), deleted at the end:
 *   (a) acked durable publishes / s: JetStreamDurableLog.append over --rooms rooms, --window appends in
 *       flight, for --duration s (acked = the stream's PubAck arrived);
 *   (b) persisted messages / s: the HistoryWriter (batch --batch, one multi-row INSERT … ON CONFLICT DO
 *       NOTHING per batch) catching up the backlog of (a) into PostgreSQL, from start to zero lag;
 *   (c) PostgreSQL outage: --rate appends / s for the whole run, PostgreSQL stopped for --outage s; the
 *       writer's lag (messages, seconds, from JetStream consumer info) sampled every second, and the time
 *       from the restart until the lag is back to zero;
 *   (d) history pages on one room of --rows rows (inserted with generate_series): EXPLAIN of the latest
 *       page and of a `before` page, then --pages reads of each through the store (p50/p99, ms).
 * PostgreSQL runs with fsync=off (as in the tests); JetStream with its default sync (see docs/scaling.md).
 *
 * Usage (repository root, after `npm run build`):
 *   node bench/durable-figures.mjs [--duration 10] [--window 2000] [--rooms 20] [--batch 5000] [--rate 2000]
 *                                  [--outage 20] [--rows 1000000] [--pages 500] [--out f.json]
 * JSON on stdout, progress on stderr. Servers are stopped by pid.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { start, stop, waitPort } from './lib/infra.mjs';
import { freePort, preparePostgres } from './lib/procs.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(ROOT, 'dist', p));
const { openNats } = await dist('engines/connections/nats.js');
const { openJetStreamDurableLog } = await dist('engines/durablelog/jetstream.js');
const { openPostgresStore } = await dist('engines/messagestore/postgres.js');
const { DeferredStore } = await dist('engines/messagestore/deferred.js');
const { HistoryWriter } = await dist('engines/messagestore/history-writer.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[durable ${new Date().toISOString().slice(11, 23)}] ${a.join(' ')}\n`);
function percentiles(values) {
  const a = Float64Array.from(values).sort();
  const at = (p) => Number(a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))].toFixed(3));
  return { p50: at(50), p99: at(99), max: Number(a[a.length - 1].toFixed(3)), n: a.length };
}
function args() {
  const a = { duration: 10, window: 2000, rooms: 20, batch: 5000, rate: 2000, outage: 20, rows: 1_000_000, pages: 500, out: null };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option ${v[i]}`);
    a[k] = k === 'out' ? v[++i] : Number(v[++i]);
  }
  return a;
}
const opt = args();
const result = { setup: { cpus: os.cpus().length, loadBefore: os.loadavg().map((x) => x.toFixed(2)).join(' '), options: opt }, figures: {} };
const tmp = [];
const children = [];

// Servers
const natsPort = await freePort();
const natsDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-js-'));
tmp.push(natsDir);
const nats = start('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', natsDir]);
children.push(nats);
const pgPort = await freePort();
const pgDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-pg-'));
tmp.push(pgDir);
const pgSetup = preparePostgres(pgDir, pgPort);
let pgProc = start('postgres', pgSetup.cmd, pgSetup.args, pgSetup.opts);
children.push(pgProc);
await Promise.all([waitPort(natsPort, nats, 'nats-server'), waitPort(pgPort, pgProc, 'postgres')]);
result.setup.servers = `nats-server ${execFileSync('nats-server', ['--version']).toString().trim()} (JetStream, file storage, default sync); PostgreSQL ${pgSetup.version} fsync=off synchronous_commit=off`;
const dbUrl = `postgres://postgres@127.0.0.1:${pgPort}/postgres`;

let seqs = new Map();
const nextMessage = (i) => {
  const room = `room-${i % opt.rooms}`;
  const seq = (seqs.get(room) ?? 0) + 1;
  seqs.set(room, seq);
  return { tenant: 'bench', room, seq, epoch: 'E1', from: 'u', ts: Date.now(), data: { text: 'x'.repeat(80), i } };
};

try {
  const nc = await openNats({ url: `nats://127.0.0.1:${natsPort}` });
  const jlog = await openJetStreamDurableLog(nc, { lagPollMs: 250 });

  // (a) acked durable publishes / s
  log('(a) appends, window', opt.window);
  let i = 0;
  let acked = 0;
  let failed = 0;
  const until = Date.now() + opt.duration * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: opt.window }, async () => {
      while (Date.now() < until) {
        try {
          await jlog.append(nextMessage(i++));
          acked++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  result.figures.ackedDurablePublishesPerSec = Math.round(acked / secs);
  result.figures.appendFailures = failed;
  log('(a)', result.figures.ackedDurablePublishesPerSec, '/s');

  // (b) persisted / s: the writer catching up the backlog of (a)
  const store = new DeferredStore('postgres', () => openPostgresStore(dbUrl, { maxConnections: 4 }), { retryMs: 200, maxRetryMs: 1000 });
  await store.firstAttempt;
  const writer = new HistoryWriter(jlog, store, { maxBatch: opt.batch, maxWaitMs: 20, retryMs: 200, maxRetryMs: 5000 }); // as in node.ts
  const count = async () => {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      return Number((await c.query("SELECT count(*) AS n FROM messages WHERE tenant = 'bench'")).rows[0].n);
    } finally {
      await c.end();
    }
  };
  const t1 = Date.now();
  writer.start();
  while (writer.stats().messages < acked) await sleep(20);
  const persistSecs = (Date.now() - t1) / 1000;
  result.figures.persistedPerSec = Math.round(acked / persistSecs);
  result.figures.persistedBacklog = acked;
  result.figures.storedRows = await count();
  log('(b)', result.figures.persistedPerSec, '/s over', acked, 'messages; rows', result.figures.storedRows);

  // (c) outage
  log('(c) outage of', opt.outage, 's at', opt.rate, 'appends/s');
  const samples = [];
  let producing = true;
  let outageAcked = 0;
  const producer = (async () => {
    const tick = 50;
    while (producing) {
      const n = Math.round((opt.rate * tick) / 1000);
      const batch = [];
      for (let k = 0; k < n; k++) batch.push(jlog.append(nextMessage(i++)).then(() => outageAcked++, () => failed++));
      await Promise.all([sleep(tick), ...batch]);
    }
  })();
  const sampler = setInterval(() => samples.push({ t: Date.now(), ...jlog.lag(), written: writer.stats().messages }), 1000);
  await sleep(3000);
  const outageAt = Date.now();
  await stop(pgProc, 'SIGINT'); // fast shutdown: SIGTERM would wait for the writer's pooled sessions to end
  await sleep(opt.outage * 1000);
  pgProc = start('postgres', pgSetup.cmd, pgSetup.args, pgSetup.opts);
  children.push(pgProc);
  await waitPort(pgPort, pgProc, 'postgres');
  const restartAt = Date.now();
  await sleep(3000);
  producing = false;
  await producer;
  const target = acked + outageAcked;
  while (writer.stats().messages < target) await sleep(20);
  const caughtUpAt = Date.now();
  clearInterval(sampler);
  const during = samples.filter((s) => s.t >= outageAt && s.t <= restartAt);
  result.figures.outage = {
    outageS: (restartAt - outageAt) / 1000,
    maxLagMessages: Math.max(...during.map((s) => s.messages)),
    maxLagSeconds: Math.max(...during.map((s) => s.oldestMs)) / 1000,
    catchUpS: (caughtUpAt - restartAt) / 1000,
    lagSamples: samples.map((s) => [Number(((s.t - outageAt) / 1000).toFixed(1)), s.messages, Number((s.oldestMs / 1000).toFixed(1))]),
  };
  result.figures.storedRowsAfterOutage = await count();
  result.figures.expectedRows = target;
  log('(c)', JSON.stringify({ ...result.figures.outage, lagSamples: undefined }));
  await writer.stop();
  await jlog.close();
  await nc.close();

  // (d) history pages on a room of opt.rows rows
  log('(d) inserting', opt.rows, 'rows');
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  await c.query(
    `INSERT INTO messages (tenant, room, seq, epoch, sender, ts, data, idem)
     SELECT 'bench', 'big', g, 'E1', 'u', 1700000000000 + g, jsonb_build_object('text', repeat('x', 80), 'i', g), NULL
     FROM generate_series(1, $1) AS g`,
    [opt.rows],
  );
  await c.query('ANALYZE messages');
  const explain = async (sql, params) => (await c.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join(' | ');
  const select = 'SELECT tenant, room, seq, epoch, sender, ts, data, idem FROM messages WHERE tenant = $1 AND room = $2';
  result.figures.explainLatest = await explain(`${select} ORDER BY seq DESC LIMIT 51`, ['bench', 'big']);
  result.figures.explainBefore = await explain(`${select} AND seq < $3 ORDER BY seq DESC LIMIT 51`, ['bench', 'big', Math.floor(opt.rows / 2)]);
  await c.end();
  const reader = await openPostgresStore(dbUrl, { maxConnections: 2 });
  const time = async (q) => {
    const ms = [];
    for (let k = 0; k < opt.pages; k++) {
      const t = process.hrtime.bigint();
      const page = await reader.page({ tenant: 'bench', room: 'big' }, q(k));
      ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (page.messages.length !== 50) throw new Error('short page');
    }
    return percentiles(ms);
  };
  result.figures.pageLatestMs = await time(() => ({ limit: 50 }));
  result.figures.pageBeforeMs = await time((k) => ({ limit: 50, before: 100 + Math.floor(((k * 7919) % 1000) / 1000 * (opt.rows - 200)) }));
  await reader.close();
  log('(d)', JSON.stringify(result.figures.pageLatestMs), JSON.stringify(result.figures.pageBeforeMs));
} finally {
  result.setup.loadAfter = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  for (const ch of children) await stop(ch, 'SIGINT').catch(() => undefined);
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
}
const out = JSON.stringify(result, null, 2);
if (opt.out) writeFileSync(opt.out, out);
process.stdout.write(out + '\n');
process.exit(0);
