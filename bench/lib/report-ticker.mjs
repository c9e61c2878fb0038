/**
 * Scenario `ticker` (issue 16) in the run's markdown: one row per run (bench/scenarios/ticker.mjs), then the
 * issue's targets as ratios of figures of the same invocation, each marked met / NOT met.
 */
import { ratio } from './stats.mjs';

const fmt = (x, unit = '') => (x === null || x === undefined ? '–' : `${typeof x === 'number' ? x.toLocaleString('en-US') : x}${unit}`);
const ok = (cond) => (cond === null ? '?' : cond ? 'met' : 'NOT met');
const codes = (c) =>
  Object.entries(c ?? {})
    .map(([code, n]) => `${fmt(n)}× ${code === '0' ? 'no close frame' : code}`)
    .join(', ') || 'none';
/** A counter's delta summed over the label sets naming `policy` (the node adds its own label). */
const metric = (m, policy) =>
  Object.entries(m ?? {})
    .filter(([labels]) => labels.includes(`policy="${policy}"`))
    .reduce((s, [, v]) => s + v, 0);

export function tickerTable(t, o) {
  const lines = [];
  const runs = t.runs ?? {};
  lines.push(
    `### Ticker (issue 16): ${fmt(t.members - t.slow)} healthy members${t.slow ? ` + ${fmt(t.slow)} slow readers (${fmt(o.tickerSlowRate)} frames/s)` : ''}, ${fmt(t.rate)} quotes/s over ${fmt(t.keys)} keys, ${fmt(o.tickerWarmupSeconds)} s of publishing then a ${fmt(t.seconds)} s window`,
  );
  lines.push('');
  lines.push(
    '| run | healthy: deliveries/s; p50 / p99 ms; lost; gaps | slow readers: kept / cut at the end (closes); catch-ups; skipped | node: behind; catch-ups; slow-consumer cuts | node CPU; load CPU | node RSS, MB: at the window start / its end / peak (VmHWM) | kernel TCP memory peak, MB | healthy: bytes read per member; per message |',
  );
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(runs)) {
    if (r === null) {
      lines.push(`| ${name} | FAILED | | | | | | |`);
      continue;
    }
    const h = r.healthyFigures;
    const s = r.slowFigures;
    const m = r.metrics;
    const at = r.rssSeriesMB[o.tickerWarmupSeconds] ?? r.rssSeriesMB.at(-1);
    lines.push(
      `| ${name} (${r.policy}, compression ${r.compression}) | ${fmt(h.deliveriesPerSec)}; ${h.latencyMs.p50} / ${h.latencyMs.p99}; ${fmt(h.lost)}; ${fmt(h.gaps)} | ${s ? `${fmt(s.keptAtEnd)} / ${fmt(s.cutAtEnd)} (${codes(s.closedByCode)}); ${fmt(s.catchups)} (${fmt(s.catchupKeys)} keys); ${fmt(s.skipped)} (${fmt(s.skippedSeqs)} seqs)` : '–'} | ${fmt(metric(m.behind, r.policy))}; ${fmt(metric(m.catchups, r.policy))}; ${fmt(m.slowConsumerDisconnects)} | ${r.serverCpuPct} %; ${r.loadCpuPct} % | ${fmt(at)} / ${fmt(r.rssSeriesMB.at(-1))} / ${fmt(r.rssPeakMB)} (${fmt(r.rssHwmMB)}) | ${fmt(r.tcpMemPeakMB)} | ${fmt(h.bytesPerMember)}; ${fmt(h.bytesPerMessage)} |`,
    );
  }
  const x = t.ratios ?? {};
  const c = runs.conflate;
  const base = runs.baseline;
  const rssR = ratio(c?.rssPeakMB, base?.rssPeakMB);
  // The peak depends on when a major GC ran; the end of the window is after the slow readers fell behind.
  const endR = ratio(c?.rssSeriesMB.at(-1), base?.rssSeriesMB.at(-1));
  const kept = c?.slowFigures ? c.slowFigures.keptAtEnd === c.slow : null;
  lines.push('');
  lines.push('| target | figure | |');
  lines.push('|---|---|---|');
  for (const [policy, k] of [
    ['ordered', 'p99OrderedOverBaseline'],
    ['conflate', 'p99ConflateOverBaseline'],
    ['drop', 'p99DropOverBaseline'],
  ]) {
    if (runs[policy] === undefined) continue;
    lines.push(`| healthy p99 with slow readers (${policy}) ≤ 1.2× the baseline | ${fmt(x[k])}× | ${ok(x[k] == null ? null : x[k] <= 1.2)} |`);
  }
  if (c !== undefined)
    lines.push(
      `| conflate keeps every slow reader connected, node memory bounded (peak RSS ≤ 1.2× the baseline's) | ${c ? `${fmt(c.slowFigures?.keptAtEnd)} of ${fmt(c.slow)} kept; peak RSS ${fmt(rssR)}× the baseline's (at the window's end ${fmt(endR)}×)` : '–'} | ${ok(kept === null || rssR === null ? null : kept && rssR <= 1.2)} |`,
    );
  if (runs['deflate-on'] !== undefined) {
    lines.push(`| compression: bytes on the wire off / on ≥ 3× | ${fmt(x.bytesOffOverOn)}× | ${ok(x.bytesOffOverOn == null ? null : x.bytesOffOverOn >= 3)} |`);
    lines.push(`| compression: node CPU on / off ≤ 1.3× | ${fmt(x.cpuOnOverOff)}× | ${ok(x.cpuOnOverOff == null ? null : x.cpuOnOverOff <= 1.3)} |`);
  }
  const busy = Object.entries(runs).filter(([, r]) => r !== null && r.loadCpuPct >= 70);
  if (busy.length > 0)
    lines.push(
      '',
      `Load generators (one core) at ${busy.map(([n, r]) => `${r.loadCpuPct} % in ${n}`).join(', ')}: near 100 % the healthy members' latency is their core's as much as the node's, and the p99 ratios above compare the clients, not the policies.`,
    );
  for (const n of t.notes ?? []) lines.push('', n);
  return lines;
}
