/**
 * Scenario `embedded` (issue 18; `--only embedded`, not in the default run): the embedded node as the README
 * starts it (`node dist/cli/main.js start --dev`, no connections), once per embedded store
 * (`--embedded-stores sqlite,pglite`: the new default beside the previous one, in one run):
 *   (a) first start on an empty data dir: spawn → `/readyz` 200 (ms, polled every 5 ms), RSS then, and RSS
 *       idle `embeddedIdleMs` later;
 *   (b) a restart on that dir (SIGTERM, start again): the same figures;
 *   (c) a steady publish load of `embeddedRate` messages/s over `embeddedRooms` rooms (`embeddedPublishers`
 *       WebSocket publishers, acks awaited) for `embeddedSeconds`: the node's longest event-loop stall, from
 *       `switchboard_nodejs_eventloop_lag_max_seconds` (the node runs with `--event-loop-resolution-ms 1`;
 *       the gauge covers the time since the previous scrape, scraped every second), messages stored/s
 *       (`switchboard_history_written_total`), acked/s, ack latency, the node's CPU and RSS;
 *   (d) kill -9 right after the load, start again: time to ready, and whether every room's history ends at
 *       its last acked seq.
 * The node runs on every core (`--embedded-core`, see embeddedCore), the publishers and this orchestrator on core 1. Then `stores alone`
 * (bench/lib/store-candidate.mjs): each candidate store in a process of its own, without the gateway.
 */
import { readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { spawnLoad, waitMsg } from '../lib/load.mjs';
import { freePort, log, procUsage, sleep, start, stop, tmpDir } from '../lib/procs.mjs';
import { candidateFigures, embeddedCore } from '../lib/store-candidate-run.mjs';
import { percentiles, ratio, round } from '../lib/stats.mjs';
import { CLI } from '../lib/systems.mjs';

const MB = 1048576;

/** Sum of one metric's samples (over labels) in a Prometheus text page; null when absent. */
function metric(text, name) {
  const lines = text.split('\n').filter((l) => l.startsWith(name) && (l[name.length] === ' ' || l[name.length] === '{'));
  return lines.length === 0 ? null : lines.reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function scrape(port) {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function diskMB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else bytes += statSync(join(d, e.name)).size;
    }
  };
  walk(dir);
  return round(bytes / MB, 1);
}

/** Starts an embedded node on `dataDir` and waits for `/readyz` 200; returns { child, port, readyMs, rssReadyMB, cpuS }. */
async function startEmbedded(store, dataDir, o) {
  const port = await freePort();
  const args = [CLI, 'start', '--dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--embedded-store', store];
  args.push('--event-loop-resolution-ms', '1', '--log-level', 'info');
  const t0 = performance.now();
  const child = start(`embedded node (${store})`, process.execPath, args, { core: embeddedCore(o) });
  const deadline = Date.now() + o.embeddedReadyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.name} exited before ready: ${child.out.slice(-1500)}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`${child.name} not ready within ${o.embeddedReadyTimeoutMs} ms: ${child.out.slice(-1500)}`);
    await sleep(5);
  }
  const readyMs = round(performance.now() - t0, 0);
  const usage = procUsage([child.pid]);
  return { child, port, readyMs, rssReadyMB: round(usage.rss / MB, 0), cpuToReadyS: round(usage.cpuS, 2) };
}

/**
 * (a)/(b): a start, then the idle RSS `embeddedIdleMs` later, and the longest event-loop stall of the idle
 * node meanwhile: what the machine's scheduling alone costs (the reference for the stall under load).
 */
async function startAndIdle(store, dataDir, o) {
  const n = await startEmbedded(store, dataDir, o);
  await scrape(n.port); // resets the event-loop monitor
  await sleep(o.embeddedIdleMs);
  const idleStallMs = round(metric(await scrape(n.port), 'switchboard_nodejs_eventloop_lag_max_seconds') * 1000, 1);
  const rssIdleMB = round(procUsage([n.child.pid]).rss / MB, 0);
  const loadAvg1m = round(os.loadavg()[0], 2);
  return { node: n, figures: { readyMs: n.readyMs, cpuToReadyS: n.cpuToReadyS, rssReadyMB: n.rssReadyMB, rssIdleMB, idleStallMs, loadAvg1m } };
}

/** (c): the steady publish load and the node's longest event-loop stall meanwhile. */
async function steadyLoad(store, n, o) {
  const pubs = [];
  for (let i = 0; i < o.embeddedPublishers; i++) {
    const child = spawnLoad({
      role: 'publisher',
      proto: 'sb',
      port: n.port,
      room: `e-${store}-${i}-`,
      rooms: Math.max(1, Math.round(o.embeddedRooms / o.embeddedPublishers)),
      userPrefix: `ep${i}-`,
      mode: 'rate',
      rate: o.embeddedRate / o.embeddedPublishers,
      dataBytes: 100,
    });
    pubs.push(child);
    await waitMsg(child, (m) => m.ev === 'ready', 60000, 'publisher joined');
  }
  const durationMs = o.embeddedSeconds * 1000;
  const t0 = Date.now() + 500;
  const endAt = t0 + durationMs;
  const dones = pubs.map((p) => waitMsg(p, (m) => m.ev === 'done', durationMs + 120000, 'publisher done'));
  for (const p of pubs) p.send({ cmd: 'go', t0, endAt });
  await sleep(t0 - Date.now());
  // This scrape resets the node's event-loop monitor: the next ones cover the window only.
  const before = await scrape(n.port);
  const written0 = metric(before, 'switchboard_history_written_total') ?? 0;
  const cpu0 = procUsage([n.child.pid]).cpuS;
  const stalls = [];
  while (Date.now() < endAt) {
    await sleep(Math.min(1000, endAt - Date.now()));
    stalls.push(metric(await scrape(n.port), 'switchboard_nodejs_eventloop_lag_max_seconds') * 1000);
  }
  const cpu1 = procUsage([n.child.pid]).cpuS;
  const rssMB = round(procUsage([n.child.pid]).rss / MB, 0);
  const written1 = metric(await scrape(n.port), 'switchboard_history_written_total') ?? 0;
  const done = await Promise.all(dones);
  const lastSeqByRoom = Object.assign({}, ...done.map((d) => d.lastSeqByRoom));
  const seconds = durationMs / 1000;
  const acked = done.reduce((s, d) => s + d.acked, 0);
  return {
    lastSeqByRoom,
    figures: {
      // The machine's 1-minute load average as the window ended: on a shared machine, stalls include scheduling.
      loadAvg1m: round(os.loadavg()[0], 2),
      rate: o.embeddedRate,
      seconds,
      sent: done.reduce((s, d) => s + d.sent, 0),
      acked,
      errors: done.reduce((s, d) => s + d.errors, 0),
      errorSample: done.find((d) => d.errorSample)?.errorSample ?? null,
      ackedPerSec: round(acked / seconds, 0),
      storedPerSec: round((written1 - written0) / seconds, 0),
      stallMaxMs: round(Math.max(...stalls), 1),
      stallPerSecondMs: Object.fromEntries(Object.entries(percentiles(stalls, [50, 99])).map(([k, v]) => [k, k === 'n' ? v : round(v, 1)])),
      ackLatencyMs: done.map((d) => ({ p50: round(d.ackLatencyMs.p50, 1), p99: round(d.ackLatencyMs.p99, 1) })),
      cpuPct: round(((cpu1 - cpu0) / seconds) * 100, 0),
      rssMB,
    },
    pubs,
  };
}

/** (d): every room's newest stored seq is its last acked one. */
async function historyComplete(port, lastSeqByRoom) {
  let complete = 0;
  const rooms = Object.entries(lastSeqByRoom);
  for (const [room, seq] of rooms) {
    const page = await (await fetch(`http://127.0.0.1:${port}/api/rooms/${encodeURIComponent(room)}/history?limit=1`)).json();
    if (page.messages?.[0]?.seq === seq) complete++;
  }
  return { rooms: rooms.length, complete };
}

async function oneStore(store, o) {
  const dataDir = tmpDir(`sb-bench-embedded-${store}-`);
  log(`embedded ${store}: first start on an empty data dir`);
  const first = await startAndIdle(store, dataDir, o);
  await stop(first.node.child);
  log(`embedded ${store}: restart`);
  const again = await startAndIdle(store, dataDir, o);
  log(`embedded ${store}: ${o.embeddedRate} msg/s for ${o.embeddedSeconds} s`);
  const load = await steadyLoad(store, again.node, o);
  await stop(again.node.child, 'SIGKILL');
  for (const p of load.pubs) await stop(p, 'SIGKILL');
  log(`embedded ${store}: kill -9, start again`);
  const after = await startEmbedded(store, dataDir, o);
  const history = await historyComplete(after.port, load.lastSeqByRoom);
  await stop(after.child);
  return {
    firstStart: first.figures,
    restart: again.figures,
    load: load.figures,
    afterKill: { readyMs: after.readyMs, history },
    diskMB: diskMB(dataDir),
  };
}

export async function embedded(o) {
  const stores = o.embeddedStores.split(',').filter(Boolean);
  const out = { stores: {} };
  for (const store of stores) out.stores[store] = await oneStore(store, o);
  const [a, b] = stores;
  if (a !== undefined && b !== undefined && out.stores[a] && out.stores[b]) {
    const x = out.stores[a];
    const y = out.stores[b];
    out.ratios = {
      of: `${a} / ${b}`,
      firstReady: ratio(x.firstStart.readyMs, y.firstStart.readyMs),
      restartReady: ratio(x.restart.readyMs, y.restart.readyMs),
      idleRss: ratio(x.restart.rssIdleMB, y.restart.rssIdleMB),
      firstIdleRss: ratio(x.firstStart.rssIdleMB, y.firstStart.rssIdleMB),
      stallMax: ratio(x.load.stallMaxMs, y.load.stallMaxMs),
    };
  }
  if (o.embeddedCandidates !== '') out.candidates = await candidateFigures(o);
  return out;
}
