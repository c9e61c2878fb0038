/**
 * The markdown table of a bench run: one row per figure, one column per system, and the target ratios
 * computed from figures of the same run.
 */
import { tickerTable } from './report-ticker.mjs';
import { ratio } from './stats.mjs';

const fmt = (x, unit = '') => (x === null || x === undefined ? '–' : `${typeof x === 'number' ? x.toLocaleString('en-US') : x}${unit}`);
const ok = (cond) => (cond === null ? '?' : cond ? 'met' : 'NOT met');

export function markdown(r) {
  const s = r.scenarios;
  const lines = [];
  const o = r.setup.options;
  lines.push(`## Bench run ${r.setup.date} (${o.quick ? 'quick' : 'full'}), commit ${r.setup.gitHead}`);
  lines.push('');
  lines.push(
    `Machine: ${r.setup.machine.cpus} cores (${r.setup.machine.cpuModel}), ${r.setup.machine.memGB} GB, Linux ${r.setup.machine.kernel}; Node ${r.setup.versions.node}, ws ${r.setup.versions.ws}, socket.io ${r.setup.versions['socket.io']}, @socket.io/redis-adapter ${r.setup.versions['@socket.io/redis-adapter']}${r.setup.infra ? `; ${r.setup.infra.nats}; ${r.setup.infra.redis}; ${r.setup.infra.postgres}` : ''}. Load average before ${r.setup.loadBefore.join(' / ')}, after ${r.setup.loadAfter?.join(' / ')}. Command: \`${r.setup.command}\`.`,
  );
  lines.push('');
  for (const f of r.failed ?? []) {
    const who = f.variant ?? f.scenario;
    const stopped =
      f.stopped.length > 0
        ? `; its ${f.stopped.length} process(es) still running were stopped (${f.stopped.map((p) => `${p.name} ${p.pid}`).join(', ')})`
        : '; it left no process running';
    lines.push(`**FAILED: ${who}**: ${f.error.length > 400 ? `${f.error.slice(0, 400)}…` : f.error}${stopped}. Its figures are missing below.`);
    lines.push('');
  }
  lines.push('| figure | Switchboard | Socket.IO 4 | raw `ws` floor | target | |');
  lines.push('|---|---|---|---|---|---|');
  const row = (name, f, target = '', met = '') => {
    const get = (k) => {
      try {
        return f(k);
      } catch {
        return null;
      }
    };
    lines.push(`| ${name} | ${fmt(get('switchboard'))} | ${fmt(get('socketio'))} | ${fmt(get('floor'))} | ${target} | ${met} |`);
  };
  if (s.idle) {
    const i = s.idle;
    const n = i.switchboard?.connections ?? i.floor?.connections;
    const rssR = ratio(i.switchboard?.rssPerConnKB, i.floor?.rssPerConnKB);
    const sioR = ratio(i.switchboard?.rssPerConnKB, i.socketio?.rssPerConnKB);
    row(
      `1. idle, ${fmt(n)} conns (${fmt(o.idleRooms ?? 100)} rooms): RSS / conn after GC, KB`,
      (k) => i[k].rssPerConnKB,
      `≤ 1.25× floor (${fmt(rssR)}×), ≤ 0.4× Socket.IO (${fmt(sioR)}×)`,
      ok(rssR === null || sioR === null ? null : rssR <= 1.25 && sioR <= 0.4),
    );
    row('1. idle: heap / conn after GC, KB', (k) => i[k].heapPerConnKB, `(${fmt(ratio(i.switchboard?.heapPerConnKB, i.floor?.heapPerConnKB))}× floor)`);
    row('1. idle: connect + join time, s', (k) => i[k].connectSeconds);
  }
  if (s.workers) {
    const w = s.workers;
    lines.push(
      `| 2. \`--workers ${w.workers}\`, ${fmt(w.connections)} idle conns: total RSS; connect rate | ${fmt(w.totalRssMB, ' MB')}; ${fmt(w.connectPerSec, '/s')} | – | – | | |`,
    );
  }
  if (s.hot) {
    const h = s.hot;
    const m = h.switchboard?.members ?? h.floor?.members;
    const dR = ratio(h.switchboard?.flat.deliveriesPerSec, h.floor?.flat.deliveriesPerSec);
    const sR = ratio(h.switchboard?.flat.deliveriesPerSec, h.socketio?.flat.deliveriesPerSec);
    row(
      `3a. hot room ${fmt(m)} members, flat out: deliveries/s`,
      (k) => h[k].flat.deliveriesPerSec,
      `≥ 0.8× floor (${fmt(dR)}×), ≥ 20× Socket.IO (${fmt(sR)}×)`,
      ok(dR === null || sR === null ? null : dR >= 0.8 && sR >= 20),
    );
    row(
      '3a. server CPU %; late (arrived after the window) / lost (never arrived) / dup-or-reordered',
      (k) => `${h[k].flat.serverCpuPct} %; ${fmt(h[k].flat.late)} / ${fmt(h[k].flat.lost)} / ${h[k].flat.seq.dupsOrReordered}`,
    );
    row('3a. deliveries per socket write, window and drain (Switchboard /metrics)', (k) => h[k].flat.deliveriesPerWrite);
    const pR = ratio(h.switchboard?.rate.latencyMs.p99, h.floor?.rate.latencyMs.p99);
    row(
      `3b. ${o.hotRate} msg/s: publish → receive p50 / p99, ms`,
      (k) => `${h[k].rate.latencyMs.p50} / ${h[k].rate.latencyMs.p99}`,
      `p99 ≤ 1.2× floor (${fmt(pR)}×)`,
      ok(pR === null ? null : pR <= 1.2),
    );
    row(`3b. server CPU %`, (k) => h[k].rate.serverCpuPct);
  }
  if (s.cross) {
    const c = s.cross;
    const cell = (k) =>
      c[k]
        ? `${fmt(c[k].flat.deliveriesPerSec)}/s; ${c[k].rate.latencyMs.p50} / ${c[k].rate.latencyMs.p99} ms; late ${fmt(c[k].flat.late + c[k].rate.late)}, lost ${fmt(c[k].flat.lost + c[k].rate.lost)}`
        : '–';
    const sbBest = Math.max(c.nats?.flat.deliveriesPerSec ?? 0, c.redis?.flat.deliveriesPerSec ?? 0);
    const xR = ratio(c.nats?.flat.deliveriesPerSec, c.socketio?.flat.deliveriesPerSec);
    const lR = ratio(c.nats?.rate.latencyMs.p99, c.redis?.rate.latencyMs.p99);
    void sbBest;
    lines.push(
      `| 4. cross-node, 3 procs, ${fmt(c.members)} members: deliveries/s flat; p50 / p99 at ${o.crossRate} msg/s | NATS: ${cell('nats')}<br>Redis pub/sub: ${cell('redis')} | + redis-adapter: ${cell('socketio')} | – | NATS ≥ 10× Socket.IO (${fmt(xR)}×); NATS p99 ≤ 0.2× Redis (${fmt(lR)}×) | ${ok(xR === null || lR === null ? null : xR >= 10 && lR <= 0.2)} |`,
    );
  }
  if (s.durable) {
    const d = s.durable;
    lines.push(
      `| 5. durable path (\`--nats --redis --database\`): acked publishes/s; persisted msgs/s; refused publishes | ${fmt(d.ackedPerSec)}; ${fmt(d.persistedPerSec)}; ${fmt(d.publishErrors)} | – | – | ≥ 50,000 each, none refused | ${ok(d.ackedPerSec >= 50000 && d.persistedPerSec >= 50000 && d.publishErrors === 0)} |`,
    );
  }
  if (s.storm) {
    for (const [mode, st] of Object.entries(s.storm.runs ?? {})) {
      if (st === null) continue;
      const adm = st.serverAdmission;
      const held = adm ? adm.worstExcess <= 0 : null;
      lines.push(
        `| 6. storm, ${fmt(st.clients)} clients, jitter ${mode}: all rejoined; all recovered (s after kill); lost; peak handshakes/s seen by the clients (limit); server: most admitted beyond burst + rate × Δt between any two of its /metrics samples | ${fmt(st.reconnectedInS, ' s')}; ${fmt(st.recoveredInS, ' s')}; ${fmt(st.lost)}; ${fmt(st.peakHandshakesPerSec)} (${fmt(s.storm.admissionRate)}/s, burst ${fmt(s.storm.admissionBurst)}); ${adm ? `${fmt(adm.worstExcess)} (${fmt(adm.samples)} samples, median ${fmt(adm.medianIntervalMs)} ms apart)` : '–'} | – | – | all back, 0 lost, admitted within the bucket (excess ≤ 0) | ${ok(st.allBack && st.lost === 0 && held === true)} |`,
      );
      const wh = st.webhooks;
      if (wh) {
        const names = Object.entries(wh.afterKillByName ?? {})
          .map(([n, c]) => `${n} ${fmt(c)}`)
          .join(', ');
        lines.push(
          `| 6. storm, ${fmt(st.clients)} clients, jitter ${mode}: webhooks per reconnecting client (events decided in the ${fmt(wh.waitedS)} s after the kill, grace 5 s, every room's occupancy and members) | ${fmt(wh.perReconnectingClient)} (${fmt(wh.afterKill)}${names !== '' ? `: ${names}` : ''}) | – | – | ≤ 0.05 | ${ok(wh.perReconnectingClient <= 0.05)} |`,
        );
      }
    }
  }
  const one = (name, cell) => lines.push(`| ${name} | ${cell} | – | – | | |`);
  if (s.connect) {
    const c = s.connect;
    one(
      `connect: joins/s per ${fmt(c.slice)}-connection slice up to ${fmt(c.conns)} (${fmt(c.rooms)} rooms)`,
      `embedded ${c.embedded?.joinsPerSec.map((x) => fmt(x)).join(', ') ?? '–'}<br>cluster ${c.cluster?.joinsPerSec.map((x) => fmt(x)).join(', ') ?? '–'}`,
    );
  }
  if (s.services) {
    const v = s.services;
    one(
      'services, 3 nodes → 3 instances: fire-and-forget / durable sends handled/s; RPC p50 / p99 ms',
      `${fmt(v.fireAndForget.handledPerSecInWindow)} / ${fmt(v.durable.handledPerSecInWindow)}; ${v.rpcMs.p50} / ${v.rpcMs.p99}`,
    );
  }
  if (s.engines) {
    const e = s.engines;
    one(
      'engines alone: acked JetStream appends/s; rows persisted/s by one writer; outage: max lag, catch-up; pages p99 latest / before, ms',
      `${fmt(e.ackedAppendsPerSec)}; ${fmt(e.persistedPerSec)}; ${fmt(e.outage.maxLagMessages)} msgs over ${e.outage.outageS} s, ${e.outage.catchUpS} s; ${e.pages.latestMs.p99} / ${e.pages.beforeMs.p99} (${fmt(e.pages.rows)} rows)`,
    );
  }
  if (s.pusher) lines.push('', ...pusherTable(s.pusher, o));
  if (s.embedded) lines.push('', ...embeddedTable(s.embedded, o));
  if (s.ticker) lines.push('', ...tickerTable(s.ticker, o));
  if (r.errors.length > 0) {
    lines.push('');
    lines.push(`Errors: ${r.errors.join('; ')}`);
  }
  if (r.warnings?.length > 0) {
    lines.push('');
    lines.push(`Warnings: ${r.warnings.join('; ')}`);
  }
  return lines.join('\n');
}

/** Scenario `pusher`: its own table (v1, the Pusher endpoint, Soketi; the ratios and targets). */
export function pusherTable(p, o) {
  const lines = [];
  const i = p.idle ?? {};
  const h = p.hot ?? {};
  const c = p.churn ?? {};
  const r = p.ratios ?? {};
  const soketi = p.soketi?.error ? `Soketi (not run: ${p.soketi.error.slice(0, 200)})` : `Soketi ${p.soketi?.version ?? '–'}`;
  lines.push(`### Pusher (issue 14): protocol v1, the Pusher endpoint, ${soketi}`);
  lines.push('');
  lines.push('| figure | v1 (`/ws`) | Pusher (`/app/:key`) | Soketi | Pusher vs v1 (target) | Pusher / Soketi |');
  lines.push('|---|---|---|---|---|---|');
  const cells = (f) =>
    ['v1', 'pusher', 'soketi'].map((k) => {
      try {
        return fmt(f(k));
      } catch {
        return '–';
      }
    });
  const row = (name, f, vs = '', soketiR = '') => lines.push(`| ${name} | ${cells(f).join(' | ')} | ${vs} | ${soketiR} |`);
  const n = i.pusher?.connections ?? i.v1?.connections;
  if (p.idle) {
    row(
      `a. idle, ${fmt(n)} conns (${fmt(o.pusherIdleChannels)} channels): RSS / conn after GC, KB`,
      (k) => i[k].rssPerConnKB,
      `v1 / Pusher ${fmt(r.idleRssV1OverPusher)} (≥ 0.8: ${ok(r.idleTargetMet ?? null)})`,
      fmt(r.idleRssPusherOverSoketi),
    );
    row('a. idle: heap / conn after GC, KB', (k) => i[k].heapPerConnKB, `v1 / Pusher ${fmt(r.idleHeapV1OverPusher)}`, fmt(r.idleHeapPusherOverSoketi));
    row('a. idle: RSS before → after, MB', (k) => `${i[k].rssMB[0]} → ${i[k].rssMB[1]}`);
    row('a. idle: connect + subscribe time, s; failures', (k) => `${i[k].connectSeconds}; ${i[k].failures}`);
  }
  const m = h.pusher?.members ?? h.v1?.members;
  if (p.hot) {
    row(
      `b. hot channel, ${fmt(m)} subscribers, flat out: deliveries/s (events/s published)`,
      (k) => `${fmt(h[k].flat.deliveriesPerSec)} (${fmt(h[k].flat.ackedPerSec)})`,
      `Pusher / v1 ${fmt(r.hotPusherOverV1)} (≥ 0.8: ${ok(r.hotTargetMet ?? null)})`,
      fmt(r.hotPusherOverSoketi),
    );
    row(
      'b. flat: server CPU %, load generators CPU %; late / lost / dup-or-reordered / gaps',
      (k) =>
        `${h[k].flat.serverCpuPct} %, ${h[k].flat.loadCpuPct ?? '–'} %; ${fmt(h[k].flat.late)} / ${fmt(h[k].flat.lost)} / ${h[k].flat.seq.dupsOrReordered} / ${h[k].flat.seq.gaps}`,
    );
    row(
      `b. ${fmt(o.pusherHotRate)} events/s: publish → receive p50 / p99, ms; lost`,
      (k) => `${h[k].rate.latencyMs.p50} / ${h[k].rate.latencyMs.p99}; ${fmt(h[k].rate.lost)}`,
      '',
      `p99 ${fmt(r.p99PusherOverSoketi)}`,
    );
    row('b. publish path', (k) => h[k].publishPath);
    if (h.pusherWs)
      lines.push(
        `| b′. diagnosis: Pusher subscribers published to by the v1 WebSocket publisher (same as v1's): deliveries/s flat; late / lost; p50 / p99 ms | ${fmt(h.v1?.flat.deliveriesPerSec)} | ${fmt(h.pusherWs.flat.deliveriesPerSec)}; ${fmt(h.pusherWs.flat.late)} / ${fmt(h.pusherWs.flat.lost)}; ${h.pusherWs.rate.latencyMs.p50} / ${h.pusherWs.rate.latencyMs.p99} | – | ${fmt(r.hotPusherWsOverV1)} | |`,
      );
    if (h.v1Http)
      lines.push(
        `| b″. diagnosis: v1 members published to through \`POST /api/publish\` (${fmt(o.pusherStreams)} connections, as the Pusher HTTP API is): deliveries/s flat (events/s); late / lost; p50 / p99 ms | ${fmt(h.v1Http.flat.deliveriesPerSec)} (${fmt(h.v1Http.flat.ackedPerSec)}); ${fmt(h.v1Http.flat.late)} / ${fmt(h.v1Http.flat.lost)}; ${h.v1Http.rate.latencyMs.p50} / ${h.v1Http.rate.latencyMs.p99} | ${fmt(h.pusher?.flat.deliveriesPerSec)} | – | Pusher / v1 over HTTP ${fmt(r.hotPusherOverV1Http)} | |`,
      );
  }
  const churnCell = (x) =>
    x
      ? `${x.correct ? 'correct' : 'WRONG'}: ${fmt(x.ops.opened)} subscribed / ${fmt(x.ops.closed)} closed / ${fmt(x.ops.unsubscribed)} unsubscribed (${fmt(x.ops.joins)} joins, ${fmt(x.ops.leaves)} leaves, ${fmt(x.ops.failed)} failed); member lists right on ${x.nodeLists.filter((v) => v.listOk).length}/${x.nodes} nodes, user_count on ${x.nodeLists.filter((v) => v.countOk).length}/${x.nodes} (${x.nodeLists.map((v) => v.userCount).join(', ')} for ${fmt(x.present + 1)}; ${fmt(x.presentOnTwoNodes)} users were on two nodes), ${x.settledS} s after the churn; member events dup ${x.events.dupAdded + x.events.dupRemoved}, missed ${x.events.missedAdded + x.events.missedRemoved}, out of turn ${x.events.outOfTurn}`
      : '–';
  if (p.churn)
    lines.push(
      `| c. presence churn, 3 nodes, ${fmt(o.pusherChurnUsers)} users, ${fmt(o.pusherChurnSeconds)} s | – | ${churnCell(c.switchboard)} | ${p.soketi?.error ? 'not run' : churnCell(c.soketi)} | | |`,
    );
  return lines;
}

/** Scenario `embedded`: one column per embedded store (the node as `npm start` runs it), then the candidate stores alone. */
export function embeddedTable(e, o) {
  const stores = Object.keys(e.stores);
  const lines = [`| embedded node (\`start --dev\`, no connections) | ${stores.join(' | ')} | target |`, `|---|${stores.map(() => '---|').join('')}---|`];
  const row = (name, f, target = '') => {
    const cell = (k) => {
      try {
        return fmt(f(e.stores[k]));
      } catch {
        return '–';
      }
    };
    lines.push(`| ${name} | ${stores.map(cell).join(' | ')} | ${target} |`);
  };
  row('first start (empty data dir): ready, ms (CPU s)', (x) => `${fmt(x.firstStart.readyMs)} (${x.firstStart.cpuToReadyS})`, '≤ 1,000');
  row('first start: RSS at ready; idle, MB', (x) => `${x.firstStart.rssReadyMB}; ${x.firstStart.rssIdleMB}`, '≤ 100');
  row('restart: ready, ms (CPU s)', (x) => `${fmt(x.restart.readyMs)} (${x.restart.cpuToReadyS})`, '≤ 1,000');
  row('restart: RSS at ready; idle, MB', (x) => `${x.restart.rssReadyMB}; ${x.restart.rssIdleMB}`, '≤ 100');
  row(
    `${fmt(o.embeddedRate)} msg/s for ${o.embeddedSeconds} s: longest event-loop stall, ms (per-second maxima p50 / p99)`,
    (x) => `${x.load.stallMaxMs} (${x.load.stallPerSecondMs.p50} / ${x.load.stallPerSecondMs.p99})`,
    '≤ 5 (+1 ms resolution)',
  );
  row("… the same node idle, before the load: longest stall, ms (the machine's scheduling)", (x) => x.restart.idleStallMs);
  row('… load average (1 min) after the first start; the restart; the load', (x) => `${x.firstStart.loadAvg1m}; ${x.restart.loadAvg1m}; ${x.load.loadAvg1m}`);
  row('… acked/s; stored/s; errors', (x) => `${fmt(x.load.ackedPerSec)}; ${fmt(x.load.storedPerSec)}; ${fmt(x.load.errors)}`);
  row(
    '… ack latency p50 / p99, ms; node CPU; RSS',
    (x) => `${x.load.ackLatencyMs.map((a) => `${a.p50} / ${a.p99}`).join(', ')}; ${x.load.cpuPct} %; ${x.load.rssMB} MB`,
  );
  row(
    'kill -9, start again: ready, ms; rooms whose history ends at the last ack',
    (x) => `${fmt(x.afterKill.readyMs)}; ${x.afterKill.history.complete}/${x.afterKill.history.rooms}`,
  );
  row('data dir, MB', (x) => x.diskMB);
  if (e.ratios) {
    lines.push('');
    lines.push(
      `Ratios ${e.ratios.of}: first start ready ${fmt(e.ratios.firstReady)}, restart ready ${fmt(e.ratios.restartReady)}, idle RSS ${fmt(e.ratios.idleRss)} (first start ${fmt(e.ratios.firstIdleRss)}), longest stall ${fmt(e.ratios.stallMax)}.`,
    );
  }
  if (e.candidates) {
    const c = Object.entries(e.candidates);
    lines.push('');
    lines.push(
      '| store alone (own process) | first open, ms; RSS, settled MB | reopen, ms; RSS MB | stored/s; longest stall; its own; p99, ms | RSS under load, MB | load avg |',
    );
    lines.push('|---|---|---|---|---|---|');
    for (const [name, x] of c) {
      lines.push(
        `| ${name} | ${fmt(x.openMs)}; ${x.rssOpenMB}, ${x.rssSettledMB} | ${fmt(x.reopenMs)}; ${x.rssReopenMB} | ${fmt(x.load.storedPerSec)}; ${x.load.stallMaxMs}; ${x.load.ownStallMaxMs}; ${x.load.stallP99Ms} | ${x.load.rssMB} | ${x.load.loadAvg1m} |`,
      );
    }
    lines.push('');
    lines.push(
      `(A bare Node process: ${c[0]?.[1].rssBareMB ?? '–'} MB RSS. Load: ${fmt(o.embeddedRate)} msg/s of ~100-byte data for ${o.embeddedSeconds} s, group commit of at most 5,000.)`,
    );
  }
  return lines;
}
