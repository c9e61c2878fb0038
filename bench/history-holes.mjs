#!/usr/bin/env node
/**
 * History holes after history-writer kills (issue 12 §1), measured on real node processes against throwaway
 * servers started here on free ports (nats-server -js, redis-server, PostgreSQL), deleted at the end:
 *
 * 3 cluster nodes, each running a history writer (the default), `--recovery-window --window`; one room
 * published over HTTP at --rate msg/s with no subscribers. --kills times: after --settle s of steady
 * publishing, node 1 or 2 (alternately) is killed with SIGKILL; from the kill until PostgreSQL holds every
 * message acked before it (at most --watch s), the room's newest --depth messages are read every --every ms
 * over HTTP from node 3, as `before` pages of --limit (so most pages are older than the recovery window):
 *   (a) pages served (200) with a hole: a seq acked before the read missing between the page's first and
 *       last message or between it and the page above it; and 503 answers (allowed: retryable);
 *   (a') the reading node's switchboard_history_holes_total by result (reads that met a hole and were filled,
 *       skipped never-acked seqs, or answered 503), when the build has it;
 *   (b) seconds from the kill until PostgreSQL holds every acked message again: the first poll (every 100 ms,
 *       from 4 s after the kill on: the killed writer's last pull request lives up to 2 s after it and keeps
 *       taking deliveries) at which every message acked at least 1 s before the poll is stored. A kill
 *       that left nothing behind (nothing missing at 4 s) counts 4 s.
 * Then the killed node is started again (same node id) and the next round begins.
 *
 * Usage (repository root): node bench/history-holes.mjs [--cli dist/cli/main.js] [--kills 5] [--rate 50]
 *   [--window 10] [--settle 4] [--watch 45] [--every 250] [--depth 400] [--limit 100] [--out f.json]
 * --cli picks the build to measure (e.g. another checkout's dist/cli/main.js for a "before" figure).
 * JSON on stdout, progress on stderr. Children are stopped by pid.
 */
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { listening, log, sleep, start, startInfra, stop, stopAll, tmpDir } from './lib/procs.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const opt = { cli: join(ROOT, 'dist/cli/main.js'), kills: 5, rate: 50, window: 10, settle: 4, watch: 45, every: 250, depth: 400, limit: 100, out: null };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt)) throw new Error(`unknown option ${process.argv[i]}`);
  const v = process.argv[++i];
  opt[k] = k === 'cli' || k === 'out' ? resolve(v) : Number(v);
}
const ROOM = 'holes';
const result = {
  setup: {
    cpus: os.cpus().length,
    load: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    options: opt,
  },
  kills: [],
  figures: {},
};

let infra;
const nodes = [];
const startNode = async (i) => {
  const child = start(`node-${i}`, process.execPath, [
    opt.cli,
    'start',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--dev',
    '--data-dir',
    tmpDir('sb-holes-'),
    '--node-id',
    `node-${i}`,
    '--nats',
    infra.natsUrl,
    '--redis',
    infra.redisUrl,
    '--database',
    infra.dbUrl,
    '--recovery-window',
    String(opt.window),
  ]);
  const port = await listening(child);
  nodes[i] = { child, url: `http://127.0.0.1:${port}` };
};

/** Acked seqs with their ack time. */
const acked = new Map();
let publishing = true;
let publishFailures = 0;
async function publisher() {
  const gap = 1000 / opt.rate;
  let next = Date.now();
  let n = 0;
  const inFlight = new Set();
  while (publishing) {
    next += gap;
    const p = fetch(`${nodes[3].url}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: ROOM, data: { n: n++ } }),
    })
      .then(async (r) => {
        const body = await r.json();
        if (r.status === 200) acked.set(body.seq, Date.now());
        else publishFailures++;
      })
      .catch(() => publishFailures++)
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    await sleep(Math.max(0, next - Date.now()));
  }
  await Promise.all(inFlight);
}

/** Reads the newest `depth` messages as `before` pages; returns { pages, holes, unavailable }. */
async function readPages() {
  const readAt = Date.now();
  const ackedThen = new Set([...acked].filter(([, at]) => at <= readAt).map(([seq]) => seq));
  let before;
  let above; // first seq of the page above
  let got = 0;
  const out = { pages: 0, holes: 0, unavailable: 0, examples: [] };
  while (got < opt.depth) {
    const r = await fetch(`${nodes[3].url}/api/rooms/${ROOM}/history?limit=${opt.limit}${before !== undefined ? `&before=${before}` : ''}`);
    if (r.status === 503) {
      out.unavailable++;
      await r.body?.cancel();
      return out;
    }
    const page = await r.json();
    out.pages++;
    const seqs = page.messages.map((m) => m.seq);
    if (seqs.length === 0) return out;
    const lo = seqs[0];
    const hi = above !== undefined ? above - 1 : seqs[seqs.length - 1];
    const present = new Set(seqs);
    const skipped = [];
    for (let s = lo; s <= hi; s++) if (!present.has(s) && ackedThen.has(s)) skipped.push(s);
    if (skipped.length > 0) {
      out.holes++;
      if (out.examples.length < 3) out.examples.push({ page: `${lo}..${seqs[seqs.length - 1]}`, below: above, skipped: skipped.slice(0, 10) });
    }
    got += seqs.length;
    above = lo;
    before = lo;
    if (!page.more) return out;
  }
  return out;
}

async function storedOf(client, seqs) {
  const { rows } = await client.query('SELECT count(*)::int AS n FROM messages WHERE room = $1 AND seq = ANY($2::bigint[])', [ROOM, seqs]);
  return rows[0].n;
}

const finish = async (aborted) => {
  publishing = false;
  result.setup.loadAfter = os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  result.aborted = aborted;
  await stopAll();
  const text = JSON.stringify(result, null, 2);
  if (opt.out) (await import('node:fs')).writeFileSync(opt.out, text);
  process.stdout.write(text + '\n');
  process.exit(aborted ? 1 : 0);
};
process.on('SIGINT', () => void finish(true));

try {
  infra = await startInfra();
  result.setup.servers = infra.versions;
  for (const i of [1, 2, 3]) await startNode(i);
  const db = new pg.Client({ connectionString: infra.dbUrl });
  await db.connect();
  const pub = publisher();
  for (let k = 0; k < opt.kills; k++) {
    await sleep(opt.settle * 1000);
    const victim = 1 + (k % 2);
    await stop(nodes[victim].child, 'SIGKILL');
    const killedAt = Date.now();
    log(`kill ${k + 1}: node-${victim} killed`);
    const round = { victim, pages: 0, holes: 0, unavailable: 0, examples: [], missingAt4s: null, secondsToStored: null };
    let lastRead = 0;
    while (Date.now() - killedAt < opt.watch * 1000) {
      const since = Date.now() - killedAt;
      if (since >= 4000 && round.secondsToStored === null) {
        const cut = Date.now() - 1000;
        const due = [...acked]
          .filter(([, at]) => at <= cut)
          .map(([seq]) => seq)
          .sort((a, b) => a - b)
          .slice(-3000);
        const missing = due.length - (await storedOf(db, due));
        if (round.missingAt4s === null) round.missingAt4s = missing;
        if (missing === 0) round.secondsToStored = Number((since / 1000).toFixed(1));
      }
      if (round.secondsToStored !== null && since > 8000) break;
      if (Date.now() - lastRead >= opt.every) {
        lastRead = Date.now();
        const r = await readPages();
        round.pages += r.pages;
        round.holes += r.holes;
        round.unavailable += r.unavailable;
        if (round.examples.length < 3) round.examples.push(...r.examples.slice(0, 3 - round.examples.length));
      }
      await sleep(50);
    }
    log(
      `kill ${k + 1}: ${round.pages} pages, ${round.holes} with a hole, ${round.unavailable} × 503, missing at 4 s: ${round.missingAt4s}, all stored after ${round.secondsToStored} s`,
    );
    result.kills.push(round);
    await startNode(victim);
  }
  publishing = false;
  await pub;
  await db.end();
  // Reads that met a hole, by result, on the reading node (builds without the counter report none).
  const metricsText = await fetch(`${nodes[3].url}/metrics`).then((r) => r.text());
  const holeReads = {};
  for (const [, result, v] of metricsText.matchAll(/^switchboard_history_holes_total\{[^}]*result="(\w+)"[^}]*\} (\d+)/gm)) holeReads[result] = Number(v);
  const ks = result.kills;
  result.figures = {
    kills: ks.length,
    killsThatLeftPostgresMissingMessages: ks.filter((r) => r.missingAt4s > 0).length,
    pagesRead: ks.reduce((a, r) => a + r.pages, 0),
    pagesServedWithAHole: ks.reduce((a, r) => a + r.holes, 0),
    killsWithAHolePage: ks.filter((r) => r.holes > 0).length,
    answers503: ks.reduce((a, r) => a + r.unavailable, 0),
    holeReadsOnReadingNode: holeReads,
    secondsToStored: ks.map((r) => r.secondsToStored),
    published: acked.size,
    publishFailures,
  };
  await finish(false);
} catch (err) {
  log('failed:', err.stack ?? err);
  await finish(true);
}
