/**
 * One measured publishing window, shared by the hot-room, cross-node and durable scenarios (and the
 * harness test): publishers run flat out or at a fixed rate for `durationMs`; members count what they
 * receive inside the window; after a drain to quiescence, every member's count is compared with acked
 * publishes (in window / late / lost / extra) and the per-member seq checks are summed.
 */
import { ask, latencyOf, spawnLoad, statsOf, waitMsg } from './load.mjs';
import { procUsage, sleep } from './procs.mjs';
import { deliveryTotals, percentiles, round } from './stats.mjs';

/** A publisher child connected and joined to `room`. */
export async function openPublisher(cfg) {
  const child = spawnLoad({ role: 'publisher', dataBytes: 100, ...cfg });
  await waitMsg(child, (m) => m.ev === 'ready', 60000, 'publisher joined');
  return child;
}

/** Switchboard's delivered and socket-write counters (summed over labels) from its /metrics; null if unreadable. */
async function scrapeWrites(port) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const sum = (name) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name) && (l[name.length] === ' ' || l[name.length] === '{'))
        .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    return { delivered: sum('switchboard_messages_delivered_total'), writes: sum('switchboard_socket_writes_total') };
  } catch {
    return null;
  }
}

/**
 * Polls `read()` (per-process stats with `total` and `short`) until no member lacks anything (`complete`),
 * nothing moved for `quietMs` (`quiet`) or `maxMs` passed (`deadline`). A stall shorter than `quietMs`
 * does not end the wait, so deliveries still queued in the server count as late, not lost.
 */
export async function drainUntilSettled(read, { quietMs, maxMs, pollMs = 100 }) {
  const start = Date.now();
  let last = -1;
  let movedAt = start;
  for (;;) {
    const stats = await read();
    const now = Date.now();
    const total = stats.reduce((s, x) => s + x.total, 0);
    if (total !== last) {
      last = total;
      movedAt = now;
    }
    const settled = stats.every((x) => x.short === 0) ? 'complete' : now - movedAt >= quietMs ? 'quiet' : now - start >= maxMs ? 'deadline' : null;
    if (settled !== null) return { stats, settled, ms: now - start };
    await sleep(pollMs);
  }
}

/**
 * Runs one window. `members` is the number of listening members each message should reach.
 * `serverPids()` lists the processes whose CPU is reported. With `metricsPort` (a Switchboard node), the
 * deliveries per coalesced socket write over the window and its drain are read from its /metrics. Returns figures and
 * counting checks.
 */
export async function measureWindow({ gens, publishers, members, durationMs, serverPids, metricsPort, drainQuietMs = 5000, drainMaxMs = 120000 }) {
  await Promise.all(gens.map((g) => ask(g, 'reset', 'reset')));
  const t0 = Date.now() + 300;
  const endAt = t0 + durationMs;
  for (const g of gens) g.send({ cmd: 'window', t0, endAt });
  const dones = publishers.map((p) => waitMsg(p, (m) => m.ev === 'done', durationMs + 120000, 'publisher done'));
  // Before t0: nothing is published yet, so the reading is not delayed by a busy server.
  const writes0 = metricsPort === undefined ? null : await scrapeWrites(metricsPort);
  for (const p of publishers) p.send({ cmd: 'go', t0, endAt });
  await sleep(t0 - Date.now());
  const pids = serverPids();
  const usage0 = procUsage(pids);
  const cpu0 = usage0.cpuS;
  // The load generators' CPU too (members and publishers, all on core 1): near 100 % means the figure is theirs.
  const loadPids = [...gens, ...publishers].map((c) => c.pid);
  const load0 = procUsage(loadPids).cpuS;
  await sleep(endAt - Date.now());
  const cpu1 = procUsage(pids).cpuS;
  const load1 = procUsage(loadPids).cpuS;
  const inWindow = (await statsOf(gens)).reduce((s, x) => s + x.inWindow, 0);
  const pubs = await Promise.all(dones);
  const acked = pubs.reduce((s, p) => s + p.acked, 0);
  // Drain: wait for quiescence (every member has every acked message, or nothing moved for drainQuietMs),
  // within drainMaxMs; what arrives in the meantime is late, what never arrives lost.
  const drain = await drainUntilSettled(() => statsOf(gens, acked), { quietMs: drainQuietMs, maxMs: drainMaxMs });
  const stats = drain.stats;
  const writes1 = metricsPort === undefined ? null : await scrapeWrites(metricsPort);
  const lat = await latencyOf(gens);
  const seconds = durationMs / 1000;
  const totals = deliveryTotals(stats, acked, members);
  return {
    seconds,
    published: pubs.reduce((s, p) => s + p.sent, 0),
    acked,
    publishErrors: pubs.reduce((s, p) => s + p.errors, 0),
    publishErrorSample: pubs.find((p) => p.errorSample)?.errorSample ?? null,
    ackedPerSec: round(acked / seconds, 0),
    deliveriesInWindow: inWindow,
    deliveriesPerSec: round(inWindow / seconds, 0),
    ...totals,
    settled: drain.settled,
    drainS: round(drain.ms / 1000, 1),
    seq: stats.reduce(
      (acc, x) => ({ dupsOrReordered: acc.dupsOrReordered + x.seq.dupsOrReordered, gaps: acc.gaps + x.seq.gaps, gapSeqs: acc.gapSeqs + x.seq.gapSeqs }),
      { dupsOrReordered: 0, gaps: 0, gapSeqs: 0 },
    ),
    droppedMembers: stats.reduce((s, x) => s + x.dropped, 0),
    latencyMs: Object.fromEntries(Object.entries(percentiles(lat, [50, 99])).map(([k, v]) => [k, k === 'n' ? v : round(v, 1)])),
    ackLatencyMs: pubs.map((p) => p.ackLatencyMs),
    serverCpuPct: round(((cpu1 - cpu0) / seconds) * 100, 0),
    loadCpuPct: round(((load1 - load0) / seconds) * 100, 0),
    // The servers' RSS when the window opened (a store still holding its start-up memory shows here).
    serverRssMB: round(usage0.rss / 1048576, 0),
    // Messages per member per write: ~1 when every message goes out on its own, more when they coalesce.
    deliveriesPerWrite:
      writes0 && writes1 && writes1.writes > writes0.writes ? round((writes1.delivered - writes0.delivered) / (writes1.writes - writes0.writes), 1) : null,
  };
}
