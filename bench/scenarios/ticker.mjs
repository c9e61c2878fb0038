/**
 * Scenario `ticker` (issue 16: slow readers and hot rooms), run only when named in --only. One room, `tickerRate`
 * keyed quotes a second (~1.45 KB frames, bench/lib/ticker-quote.mjs) over `tickerKeys` keys, one node on core 0,
 * the load on core 1. Runs, each on a fresh node:
 *
 *   baseline     `ordered`, the healthy members alone (no slow readers)
 *   ordered      `ordered`, the healthy members + `tickerSlow` slow readers (cut with 4003 when they fall behind)
 *   conflate     `conflate`, the same members (slow readers get `catchup` + the newest message of each key)
 *   drop         `drop`, the same members (slow readers get `skipped` + the newest message)
 *   deflate-off  the baseline again on the compression build (`tickerCompressionCli`), compression off
 *   deflate-on   the same, compression on, its members negotiating permessage-deflate
 *
 * The healthy members are the same `tickerMembers` − `tickerSlow` in every run, so "the same run without the slow
 * readers" is the baseline with the slow readers left out, not replaced. A slow reader reads at `tickerSlowRate`
 * frames/s (a tenth of the publish rate) through a 4 KiB read buffer (bench/lib/ticker-loadgen.mjs): the kernel's
 * buffers fill, then the node's, and the node sees it fall behind (its metrics say so: `behind`, `catchups`, slow
 * consumer disconnects). Per run: deliveries/s and publish → receive p50/p99 of the healthy members, slow readers
 * cut vs kept, catch-ups, the node's peak RSS (VmHWM) and CPU over the window, bytes read per member.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ask, closeLoad, latencyOf, openMembers, spawnLoad, statsOf, waitMsg } from '../lib/load.mjs';
import { drainUntilSettled } from '../lib/measure.mjs';
import { log, procUsage, sleep, tmpDir } from '../lib/procs.mjs';
import { runVariant } from '../lib/scenario.mjs';
import { percentiles, ratio, round } from '../lib/stats.mjs';
import { CLI, startSystem } from '../lib/systems.mjs';
import { SB_BENCH_FLAGS } from './single.mjs';

/**
 * The node's flags for compression on and off: `--compression` of branch i16-deflate (081619f: permessage-deflate,
 * on by default). Change them here if the flag's name changes.
 */
export const COMPRESSION = { on: ['--compression', 'true'], off: ['--compression', 'false'] };

const ROOM = 'ticker';
const MB = 1048576;

/** Whether a build's `start` knows the compression flag (a build without it serves no compressed frame). */
function hasCompression(cli) {
  try {
    return execFileSync(process.execPath, [cli, 'start', '--help'], { encoding: 'utf8' }).includes(COMPRESSION.on[0]);
  } catch {
    return false;
  }
}

/** Sums of Switchboard counters from /metrics, by name and label set (`name{labels}` → value). */
async function scrape(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = {};
  for (const l of text.split('\n')) {
    if (!l.startsWith('switchboard_')) continue;
    const i = l.lastIndexOf(' ');
    out[l.slice(0, i)] = Number(l.slice(i + 1));
  }
  return out;
}
/** `after − before` of every counter whose name starts with `prefix`, keyed by its labels. */
function deltas(before, after, prefix) {
  const out = {};
  for (const [k, v] of Object.entries(after)) {
    if (!k.startsWith(prefix)) continue;
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k.slice(prefix.length) || 'total'] = d;
  }
  return out;
}
const peakRss = (pid) => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
};

/** The kernel's TCP memory, all sockets (pages in /proc/net/sockstat). */
const tcpMemBytes = () => {
  const m = /^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m ? Number(m[1]) * 4096 : 0;
};

const sumOf = (parts, k) => parts.reduce((s, x) => s + (x[k] ?? 0), 0);
const closedOf = (parts) => {
  const out = {};
  for (const p of parts) for (const [code, n] of Object.entries(p.closed)) out[code] = (out[code] ?? 0) + n;
  return out;
};

/** One run: a fresh node, the members, the publisher, one window, the drain. */
async function tickerRun(spec, o) {
  const healthy = o.tickerMembers - o.tickerSlow;
  const slowN = spec.slow ? o.tickerSlow : 0;
  const extra = [...SB_BENCH_FLAGS];
  if (spec.policy !== 'ordered') extra.push('--room-policies', JSON.stringify([{ rooms: [ROOM], delivery: spec.policy }]));
  if (spec.compression !== undefined) extra.push(...COMPRESSION[spec.compression]);
  const sys = await startSystem('switchboard', { extra, cli: spec.cli, dataDir: spec.cli === CLI ? undefined : tmpDir('sb-bench-ticker-') });
  const gens = [];
  try {
    const common = { gen: 'ticker', port: sys.port, room: ROOM, concurrency: 200, sampleEvery: o.sampleEvery, deflate: spec.compression === 'on' };
    const h = await openMembers({ n: healthy, procs: o.tickerProcs, ...common });
    gens.push(...h.gens);
    const s =
      slowN > 0
        ? await openMembers({
            n: slowN,
            procs: 1,
            ...common,
            slowRate: o.tickerSlowRate,
            readBuffer: o.tickerReadBuffer,
            perProc: (k) => ({ userPrefix: `slow${k}-` }),
          })
        : { gens: [], joined: 0 };
    gens.push(...s.gens);
    const pub = spawnLoad({ gen: 'ticker', role: 'publisher', port: sys.port, room: ROOM, rate: o.tickerRate, keys: o.tickerKeys });
    gens.push(pub);
    await waitMsg(pub, (m) => m.ev === 'ready', 60000, 'ticker publisher joined');
    log(`ticker ${spec.name}: ${h.joined} healthy + ${s.joined} slow members joined in ${round(h.seconds + (s.seconds ?? 0), 1)} s`);
    await sleep(1000);

    await Promise.all([...h.gens, ...s.gens].map((g) => ask(g, 'reset', 'reset')));
    // Publishing starts at `start`; the measured window opens `tickerWarmupSeconds` later, once slow readers have
    // filled the kernel's buffers (about 4 MB a socket on loopback) and reach the node's bounds.
    const start = Date.now() + 300;
    const t0 = start + o.tickerWarmupSeconds * 1000;
    const endAt = t0 + o.tickerSeconds * 1000;
    for (const g of [...h.gens, ...s.gens]) g.send({ cmd: 'window', t0, endAt });
    const done = waitMsg(pub, (m) => m.ev === 'done', endAt - Date.now() + 120000, 'ticker publisher done');
    const m0 = await scrape(sys.port);
    pub.send({ cmd: 'go', t0: start, endAt });
    const pids = sys.pids();
    // Every second from the first publish: the node's RSS (VmHWM below is its whole life) and the kernel's TCP
    // memory (/proc/net/sockstat, every socket of the machine: what the slow readers' unread bytes cost there).
    let rssMax = 0;
    let tcpMax = 0;
    const rssSeries = [];
    let cpu0 = null;
    let load0 = null;
    await sleep(start - Date.now());
    while (Date.now() < endAt) {
      if (cpu0 === null && Date.now() >= t0) {
        cpu0 = procUsage(pids).cpuS;
        load0 = procUsage(gens.map((g) => g.pid)).cpuS;
      }
      const rss = procUsage(pids).rss;
      rssMax = Math.max(rssMax, rss);
      tcpMax = Math.max(tcpMax, tcpMemBytes());
      rssSeries.push(round(rss / MB, 0));
      await sleep(Math.min(1000, Math.max(0, (cpu0 === null ? t0 : endAt) - Date.now())));
    }
    const cpu1 = procUsage(pids).cpuS;
    const load1 = procUsage(gens.map((g) => g.pid)).cpuS;
    const slowAtEnd = s.gens.length > 0 ? await statsOf(s.gens) : [];
    const pubDone = await done;
    const drain = await drainUntilSettled(() => statsOf(h.gens, pubDone.acked), { quietMs: 5000, maxMs: 60000 });
    const m1 = await scrape(sys.port);
    const lat = await latencyOf(h.gens);
    const hs = drain.stats;
    const seconds = o.tickerSeconds;
    const healthyDelivered = sumOf(hs, 'total');
    const slowAfter = s.gens.length > 0 ? await statsOf(s.gens) : [];
    const metrics = {
      behind: deltas(m0, m1, 'switchboard_members_behind_total'),
      catchups: deltas(m0, m1, 'switchboard_catchups_total'),
      catchupMessages: deltas(m0, m1, 'switchboard_catchup_messages_total'),
      slowConsumerDisconnects: Object.values(deltas(m0, m1, 'switchboard_slow_consumer_disconnects_total')).reduce((a, b) => a + b, 0),
    };
    const out = {
      name: spec.name,
      policy: spec.policy,
      compression: spec.compression ?? 'none in this build',
      cli: spec.cli === CLI ? 'this tree' : spec.cli,
      healthy: h.joined,
      slow: s.joined,
      published: pubDone.sent,
      acked: pubDone.acked,
      publishErrors: pubDone.errors,
      publishErrorSample: pubDone.errorSample,
      ackLatencyMs: pubDone.ackLatencyMs,
      healthyFigures: {
        deliveriesPerSec: round(sumOf(hs, 'inWindow') / seconds, 0),
        latencyMs: Object.fromEntries(Object.entries(percentiles(lat, [50, 99])).map(([k, v]) => [k, k === 'n' ? v : round(v, 1)])),
        delivered: healthyDelivered,
        lost: sumOf(hs, 'short'),
        extra: sumOf(hs, 'over'),
        gaps: sumOf(hs, 'gaps'),
        dups: sumOf(hs, 'dups'),
        catchups: sumOf(hs, 'catchups'),
        skipped: sumOf(hs, 'skipped'),
        closed: closedOf(hs),
        settled: drain.settled,
        bytesPerMember: round(sumOf(hs, 'bytes') / h.joined, 0),
        bytesPerMessage: healthyDelivered > 0 ? round(sumOf(hs, 'bytes') / healthyDelivered, 1) : null,
        negotiatedDeflate: sumOf(hs, 'deflate'),
        compressedFrames: sumOf(hs, 'compressed'),
        inflated: sumOf(hs, 'inflated'),
        inflateErrors: sumOf(hs, 'inflateErrors'),
      },
      slowFigures:
        slowN > 0
          ? {
              keptAtEnd: sumOf(slowAtEnd, 'open'),
              cutAtEnd: slowN - sumOf(slowAtEnd, 'open'),
              closedByCode: closedOf(slowAtEnd),
              receivedPerMember: round(sumOf(slowAtEnd, 'total') / s.joined, 1),
              bytesPerMember: round(sumOf(slowAtEnd, 'bytes') / s.joined, 0),
              catchups: sumOf(slowAtEnd, 'catchups'),
              catchupKeys: sumOf(slowAtEnd, 'catchupKeys'),
              skipped: sumOf(slowAtEnd, 'skipped'),
              skippedSeqs: sumOf(slowAtEnd, 'skippedSeqs'),
              // After the drain too (a cut may reach a slow reader late: its close frame waits behind what it has not read).
              keptAfterDrain: sumOf(slowAfter, 'open'),
            }
          : null,
      metrics,
      serverCpuPct: round(((cpu1 - cpu0) / seconds) * 100, 0),
      loadCpuPct: round(((load1 - load0) / seconds) * 100, 0),
      rssPeakMB: round(rssMax / MB, 0),
      tcpMemPeakMB: round(tcpMax / MB, 0),
      rssSeriesMB: rssSeries,
      rssHwmMB: round(peakRss(sys.child.pid) / MB, 0),
      drainS: round(drain.ms / 1000, 1),
    };
    log(
      `ticker ${spec.name}: ${out.healthyFigures.deliveriesPerSec}/s, p50/p99 ${out.healthyFigures.latencyMs.p50}/${out.healthyFigures.latencyMs.p99} ms, cpu ${out.serverCpuPct} % (load ${out.loadCpuPct} %), rss peak ${out.rssPeakMB} MB, kernel TCP ${out.tcpMemPeakMB} MB, ${out.healthyFigures.bytesPerMessage} B/msg, lost ${out.healthyFigures.lost}` +
        (out.slowFigures ? `; slow kept ${out.slowFigures.keptAtEnd}/${slowN}, catchups ${out.slowFigures.catchups}, skipped ${out.slowFigures.skipped}` : '') +
        `; metrics ${JSON.stringify(metrics)}`,
    );
    return out;
  } finally {
    await closeLoad(gens);
    await sys.stop();
  }
}

export async function ticker(o) {
  const compressionCli = o.tickerCompressionCli || CLI;
  const canCompress = hasCompression(compressionCli);
  const specs = {
    baseline: { policy: 'ordered', slow: false, cli: CLI },
    ordered: { policy: 'ordered', slow: true, cli: CLI },
    conflate: { policy: 'conflate', slow: true, cli: CLI },
    drop: { policy: 'drop', slow: true, cli: CLI },
    'deflate-off': { policy: 'ordered', slow: false, cli: compressionCli, compression: 'off' },
    'deflate-on': { policy: 'ordered', slow: false, cli: compressionCli, compression: 'on' },
  };
  // The policy runs have compression off when this build has it, so they compare with the baseline as before it.
  if (hasCompression(CLI)) for (const k of ['baseline', 'ordered', 'conflate', 'drop']) specs[k].compression = 'off';
  const out = { members: o.tickerMembers, slow: o.tickerSlow, rate: o.tickerRate, keys: o.tickerKeys, seconds: o.tickerSeconds, runs: {}, notes: [] };
  for (const name of o.tickerRuns.split(',').filter(Boolean)) {
    const spec = specs[name];
    if (spec === undefined) throw new Error(`unknown ticker run ${name} (one of ${Object.keys(specs).join(', ')})`);
    if (spec.compression !== undefined && name.startsWith('deflate') && !canCompress) {
      out.notes.push(`${name} not run: ${compressionCli} has no ${COMPRESSION.on[0]} flag (give --ticker-compression-cli a build of i16-deflate)`);
      continue;
    }
    await runVariant(out.runs, name, `ticker ${name}`, () => tickerRun({ name, ...spec }, o));
  }
  // A failed run is null in `runs`; runScenario reports the scenario's `failed`.
  if (out.runs.failed !== undefined) {
    out.failed = out.runs.failed;
    delete out.runs.failed;
  }
  const r = out.runs;
  const p99 = (x) => x?.healthyFigures.latencyMs.p99;
  out.ratios = {
    p99OrderedOverBaseline: ratio(p99(r.ordered), p99(r.baseline)),
    p99ConflateOverBaseline: ratio(p99(r.conflate), p99(r.baseline)),
    p99DropOverBaseline: ratio(p99(r.drop), p99(r.baseline)),
    bytesOffOverOn: ratio(r['deflate-off']?.healthyFigures.bytesPerMessage, r['deflate-on']?.healthyFigures.bytesPerMessage),
    cpuOnOverOff: ratio(r['deflate-on']?.serverCpuPct, r['deflate-off']?.serverCpuPct),
  };
  return out;
}
