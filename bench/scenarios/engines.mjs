/**
 * Scenario `engines` (the durable engines alone, issue 5; `--only engines`, not in the default run), in this
 * process against its own nats-server (JetStream, default sync) and PostgreSQL (fsync off), so the outage
 * below does not touch the run's shared infrastructure:
 *   (a) acked durable publishes/s: JetStreamDurableLog.append over `enginesRooms` rooms, `enginesWindow`
 *       appends in flight, for `enginesSeconds`;
 *   (b) persisted/s: the HistoryWriter (batches of `enginesBatch`) catching up the backlog of (a);
 *   (c) PostgreSQL outage: `enginesRate` appends/s throughout, PostgreSQL stopped for `enginesOutageS`; the
 *       writer's lag sampled every second and the time from the restart to zero lag;
 *   (d) history pages on one room of `enginesRows` rows: EXPLAIN of the latest and a `before` page, then
 *       `enginesPages` reads of each through the store (p50/p99 ms).
 * The engines' clients run in the orchestrator (core 1); nats-server and PostgreSQL on every core.
 */
import { join } from 'node:path';
import pg from 'pg';
import { startInfra } from '../lib/infra.mjs';
import { log, sleep, start, stop, waitPort } from '../lib/procs.mjs';
import { percentiles, round } from '../lib/stats.mjs';
import { ROOT } from '../lib/systems.mjs';

const dist = (p) => import(join(ROOT, 'dist', p));
const ms3 = (p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, k === 'n' ? v : round(v, 3)]));

export async function engines(o) {
  const { openNats } = await dist('engines/connections/nats.js');
  const { openJetStreamDurableLog } = await dist('engines/durablelog/jetstream.js');
  const { openPostgresStore } = await dist('engines/messagestore/postgres.js');
  const { DeferredStore } = await dist('engines/messagestore/deferred.js');
  const { HistoryWriter } = await dist('engines/messagestore/history-writer.js');
  const inf = await startInfra(); // owned by this scenario: stopped at its end
  const out = { setup: `${inf.versions.nats} (JetStream, file storage, default sync); ${inf.versions.postgres}; clients in the orchestrator on core 1` };
  const seqs = new Map();
  let i = 0;
  const nextMessage = () => {
    const room = `room-${i % o.enginesRooms}`;
    const seq = (seqs.get(room) ?? 0) + 1;
    seqs.set(room, seq);
    return { tenant: 'bench', room, seq, epoch: 'E1', from: 'u', ts: Date.now(), data: { text: 'x'.repeat(80), i: i++ } };
  };
  const nc = await openNats({ url: inf.natsUrl });
  const jlog = await openJetStreamDurableLog(nc, { lagPollMs: 250 });
  let writer = null;
  try {
    // (a)
    let acked = 0;
    let failed = 0;
    const until = Date.now() + o.enginesSeconds * 1000;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: o.enginesWindow }, async () => {
        while (Date.now() < until) {
          try {
            await jlog.append(nextMessage());
            acked++;
          } catch {
            failed++;
          }
        }
      }),
    );
    out.ackedAppendsPerSec = round(acked / (Number(process.hrtime.bigint() - t0) / 1e9), 0);
    out.appendFailures = failed;
    log(`engines (a): ${out.ackedAppendsPerSec} acked appends/s`);

    // (b)
    const store = new DeferredStore('postgres', () => openPostgresStore(inf.dbUrl, { maxConnections: 4 }), { retryMs: 200, maxRetryMs: 1000 });
    await store.firstAttempt;
    writer = new HistoryWriter(jlog, store, { maxBatch: o.enginesBatch, maxWaitMs: 20, retryMs: 200, maxRetryMs: 5000 }); // as in the node
    const t1 = Date.now();
    writer.start();
    while (writer.stats().messages < acked) await sleep(20);
    out.persistedPerSec = round(acked / ((Date.now() - t1) / 1000), 0);
    out.persistedBacklog = acked;
    log(`engines (b): ${out.persistedPerSec} persisted/s over ${acked}`);

    // (c)
    const samples = [];
    let producing = true;
    let outageAcked = 0;
    const producer = (async () => {
      const tick = 50;
      while (producing) {
        const batch = [];
        for (let k = 0; k < Math.round((o.enginesRate * tick) / 1000); k++)
          batch.push(
            jlog.append(nextMessage()).then(
              () => outageAcked++,
              () => failed++,
            ),
          );
        await Promise.all([sleep(tick), ...batch]);
      }
    })();
    const sampler = setInterval(() => samples.push({ t: Date.now(), ...jlog.lag() }), 1000);
    await sleep(3000);
    const outageAt = Date.now();
    await stop(inf.procs.pg, 'SIGINT'); // fast shutdown: SIGTERM would wait for the writer's pooled sessions
    await sleep(o.enginesOutageS * 1000);
    inf.procs.pg = start('postgres', inf.pgSetup.cmd, inf.pgSetup.args, inf.pgSetup.opts);
    await waitPort(inf.pgPort, inf.procs.pg);
    const restartAt = Date.now();
    await sleep(3000);
    producing = false;
    await producer;
    while (writer.stats().messages < acked + outageAcked) await sleep(20);
    const caughtUpAt = Date.now();
    clearInterval(sampler);
    const during = samples.filter((s) => s.t >= outageAt && s.t <= restartAt);
    out.outage = {
      outageS: round((restartAt - outageAt) / 1000, 1),
      appendsPerSec: o.enginesRate,
      maxLagMessages: Math.max(0, ...during.map((s) => s.messages)),
      maxLagSeconds: round(Math.max(0, ...during.map((s) => s.oldestMs)) / 1000, 1),
      catchUpS: round((caughtUpAt - restartAt) / 1000, 1),
      expectedRows: acked + outageAcked,
    };
    await writer.stop();
    writer = null;

    // (d)
    const c = new pg.Client({ connectionString: inf.dbUrl });
    await c.connect();
    try {
      out.outage.storedRows = Number((await c.query("SELECT count(*) AS n FROM messages WHERE tenant = 'bench'")).rows[0].n);
      log(`engines (c): ${JSON.stringify(out.outage)}`);
      await c.query(
        `INSERT INTO messages (tenant, room, seq, epoch, sender, ts, data, idem)
         SELECT 'bench', 'big', g, 'E1', 'u', 1700000000000 + g, jsonb_build_object('text', repeat('x', 80), 'i', g), NULL
         FROM generate_series(1, $1) AS g`,
        [o.enginesRows],
      );
      await c.query('ANALYZE messages');
      const explain = async (sql, params) =>
        (await c.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join(' | ');
      const select = 'SELECT tenant, room, seq, epoch, sender, ts, data, idem FROM messages WHERE tenant = $1 AND room = $2';
      out.pages = { rows: o.enginesRows };
      out.pages.explainLatest = await explain(`${select} ORDER BY seq DESC LIMIT 51`, ['bench', 'big']);
      out.pages.explainBefore = await explain(`${select} AND seq < $3 ORDER BY seq DESC LIMIT 51`, ['bench', 'big', Math.floor(o.enginesRows / 2)]);
    } finally {
      await c.end();
    }
    const reader = await openPostgresStore(inf.dbUrl, { maxConnections: 2 });
    try {
      const time = async (q) => {
        const ms = [];
        for (let k = 0; k < o.enginesPages; k++) {
          const t = process.hrtime.bigint();
          const page = await reader.page({ tenant: 'bench', room: 'big' }, q(k));
          ms.push(Number(process.hrtime.bigint() - t) / 1e6);
          if (page.messages.length !== 50) throw new Error('short page');
        }
        return ms3(percentiles(ms, [50, 99]));
      };
      out.pages.latestMs = await time(() => ({ limit: 50 }));
      out.pages.beforeMs = await time((k) => ({ limit: 50, before: 100 + Math.floor((((k * 7919) % 1000) / 1000) * (o.enginesRows - 200)) }));
    } finally {
      await reader.close();
    }
    log(`engines (d): latest ${JSON.stringify(out.pages.latestMs)}, before ${JSON.stringify(out.pages.beforeMs)}`);
    return out;
  } finally {
    await writer?.stop().catch(() => undefined);
    await jlog.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    await inf.stop();
  }
}
