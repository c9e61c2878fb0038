/**
 * One embedded-store candidate alone, in a process of its own (run by bench/lib/store-candidate-run.mjs):
 * `node store-candidate.mjs <candidate> <empty dir> <rate> <seconds>` prints one JSON line with
 *   - openMs / rssOpenMB / rssSettledMB: opening the empty dir (first open) and RSS then and 2 s later;
 *   - reopenMs / rssReopenMB: closing and opening it again;
 *   - stored/s and the event loop's longest stall (perf_hooks monitorEventLoopDelay, 1 ms resolution; and less the
 *     time the thread waited for a CPU, bench/lib/loop-own-stall.mjs) while
 *     `rate` messages/s arrive for `seconds` and are written as the node's history writer does (group commit:
 *     each insert takes whatever arrived meanwhile, at most 5,000).
 * Candidates: sqlite-worker (the shipped store), sqlite-main (better-sqlite3 on the event loop, same schema
 * and pragmas), pglite-main (the shipped PGlite store), pglite-worker (that store inside a worker thread).
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ownStallProbe } from './loop-own-stall.mjs';
import { ROOT } from './systems.mjs';

const [candidate, dir, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const dist = (p) => import(join(ROOT, 'dist', p));
const MB = 1048576;
const rssMB = () => Math.round(process.memoryUsage.rss() / MB);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A store with insert(batch) and close(). */
async function open() {
  if (candidate === 'sqlite-worker') return (await dist('engines/messagestore/sqlite.js')).openSqliteStore(dir);
  if (candidate === 'pglite-main') return (await dist('engines/messagestore/pglite.js')).openPgliteStore(dir);
  if (candidate === 'sqlite-main') {
    const { default: Database } = await import('better-sqlite3');
    const { migrateSqlite } = await dist('engines/messagestore/sqlite-schema.js');
    mkdirSync(dir, { recursive: true });
    const db = new Database(join(dir, 'history.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    migrateSqlite(db);
    const row = db.prepare('INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING');
    const rows = db.transaction((batch) => {
      for (const m of batch) row.run(m.tenant, m.room, m.seq, m.epoch, m.from, m.ts, JSON.stringify(m.data), m.idem ?? null, m.event ?? null);
    });
    return { insert: async (batch) => rows(batch), close: async () => db.close() };
  }
  if (candidate === 'pglite-worker') {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.module).then(async ({ openPgliteStore }) => {
        const store = await openPgliteStore(workerData.dir);
        parentPort.on('message', async (m) => {
          if (m.op === 'close') { await store.close(); parentPort.postMessage({ id: m.id }); parentPort.close(); return; }
          try { await store.insert(m.batch); parentPort.postMessage({ id: m.id }); } catch (e) { parentPort.postMessage({ id: m.id, error: String(e) }); }
        });
        parentPort.postMessage({ id: 0 });
      }, (e) => parentPort.postMessage({ id: 0, error: String(e) }));`;
    const worker = new Worker(code, { eval: true, workerData: { dir, module: join(ROOT, 'dist', 'engines', 'messagestore', 'pglite.js') } });
    const waiting = new Map();
    let next = 1;
    worker.on('message', (m) => {
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error) w?.reject(new Error(m.error));
      else w?.resolve();
    });
    const call = (id, msg) => new Promise((resolve, reject) => (waiting.set(id, { resolve, reject }), msg && worker.postMessage(msg)));
    await call(0);
    return {
      insert: (batch) => {
        const id = next++;
        return call(id, { id, op: 'insert', batch });
      },
      close: async () => {
        const id = next++;
        await call(id, { id, op: 'close' });
        await new Promise((r) => worker.once('exit', r));
      },
    };
  }
  throw new Error(`unknown candidate ${candidate}`);
}

const out = { candidate, rssBareMB: rssMB() };
let t = performance.now();
let store = await open();
out.openMs = Math.round(performance.now() - t);
out.rssOpenMB = rssMB();
await sleep(2000);
out.rssSettledMB = rssMB();
await store.close();
t = performance.now();
store = await open();
out.reopenMs = Math.round(performance.now() - t);
out.rssReopenMB = rssMB();

// The load: messages due at `rate`/s from t0 are queued by a 1 ms timer; one writer inserts what is queued.
const pending = [];
let made = 0;
let stored = 0;
const h = monitorEventLoopDelay({ resolution: 1 });
const t0 = performance.now();
const endAt = t0 + seconds * 1000;
const pad = 'x'.repeat(80);
const producer = setInterval(() => {
  const due = Math.min(rate * seconds, Math.floor(((performance.now() - t0) / 1000) * rate));
  for (; made < due; made++) {
    pending.push({
      tenant: 'bench',
      room: `room-${made % 50}`,
      seq: Math.floor(made / 50) + 1,
      epoch: 'E1',
      from: 'u',
      ts: Date.now(),
      data: { text: pad, i: made },
    });
  }
}, 1);
h.enable();
const probe = ownStallProbe();
while (performance.now() < endAt || pending.length > 0) {
  if (pending.length === 0) {
    await sleep(1);
    continue;
  }
  const batch = pending.splice(0, 5000);
  await store.insert(batch);
  stored += batch.length;
}
const elapsedS = (performance.now() - t0) / 1000;
h.disable();
probe.stop();
clearInterval(producer);
out.load = {
  loadAvg1m: Math.round(os.loadavg()[0] * 100) / 100,
  rate,
  seconds,
  storedPerSec: Math.round(stored / elapsedS),
  elapsedS: Math.round(elapsedS * 10) / 10,
  stallMaxMs: Math.round(h.max / 1e5) / 10,
  stallP99Ms: Math.round(h.percentile(99) / 1e5) / 10,
  // The longest stall less the time the main thread waited for a CPU (bench/lib/loop-own-stall.mjs).
  ownStallMaxMs: Math.max(0, ...probe.seconds().map((b) => b[2])),
  rssMB: rssMB(),
};
await store.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
