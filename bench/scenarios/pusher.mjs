/**
 * Scenario `pusher` (issue 14; `--only pusher`, not in the default run): Switchboard's Pusher Channels
 * endpoint beside its protocol v1 and beside Soketi 1.6, in one run, with pusher-js-shaped load
 * (bench/lib/pusher-loadgen.mjs):
 *   (a) idle memory: N idle connections on one server process, each subscribed to one of `pusherIdleChannels`
 *       channels (v1: joined to one of as many rooms); RSS and heap delta per connection after a forced GC;
 *   (b) hot room: M subscribers of one channel; flat out, then `pusherHotRate` events/s: deliveries/s,
 *       publish → receive p50/p99, server CPU, late / lost, order per publishing stream. Pusher systems are
 *       published to through their HTTP API (signed `POST /apps/<id>/events`, `pusherStreams` keep-alive
 *       connections, one request in flight each); v1 as scenario 3 (`hot`) does: one WebSocket publisher,
 *       `window` publishes in flight;
 *   (c) presence under churn across 3 nodes (bench/scenarios/pusher-churn.mjs).
 * Servers on core 0, load generators on core 1. Soketi is installed into bench/.peers/soketi (lib/soketi.mjs).
 */
import { closeLoad, openMembers } from '../lib/load.mjs';
import { measureWindow, openPublisher } from '../lib/measure.mjs';
import { log, sleep } from '../lib/procs.mjs';
import { runVariant } from '../lib/scenario.mjs';
import { ensureSoketi, startSoketi } from '../lib/soketi.mjs';
import { ratio, round } from '../lib/stats.mjs';
import { memAfterGc, startSystem } from '../lib/systems.mjs';
import { churn } from './pusher-churn.mjs';
import { SB_BENCH_FLAGS } from './single.mjs';

/**
 * The one Pusher app every system serves. Its id is `default`, the tenant of Switchboard's `--dev` protocol-v1
 * connections, so a v1 publish to room `hot` reaches the Pusher subscribers of channel `hot` (variant `pusherWs`).
 */
export const BENCH_APP = { id: 'default', key: 'bench-key', secret: 'bench-secret-0123456789' };

/** Switchboard's flags for the Pusher scenario (the same for its v1 and Pusher variants). */
export function sbPusherFlags(o, extra = []) {
  const app = { ...BENCH_APP, maxPresenceMembers: Math.max(100, o.pusherChurnUsers + 10) };
  return [...SB_BENCH_FLAGS, '--pusher-apps', JSON.stringify([app]), ...extra];
}

/**
 * One server of a system: Switchboard (for `v1`, `pusher`, `pusherWs` and `v1Http`) or Soketi. Two diagnoses
 * beside the figures: `pusherWs`, Pusher subscribers published to by scenario 3's v1 WebSocket publisher
 * instead of the HTTP API (the endpoint's fan-out against v1's under the same publishing), and `v1Http`, v1
 * members published to through `POST /api/publish` as the Pusher systems are through their HTTP API.
 */
async function serverOf(kind, o, extra = []) {
  if (kind === 'soketi') return startSoketi(BENCH_APP, { maxPresenceMembers: Math.max(100, o.pusherChurnUsers + 10) });
  return startSystem('switchboard', { name: `switchboard (${kind})`, extra: sbPusherFlags(o, extra) });
}

/** The load generators' protocol settings for a system. */
const loadOf = (kind, o) =>
  kind === 'v1' || kind === 'v1Http'
    ? { proto: 'sb' }
    : { proto: 'pusher', key: BENCH_APP.key, streams: o.pusherStreams, ...(kind === 'pusherWs' ? { event: 'message' } : { event: 'bench' }) };

async function idle(kind, o) {
  const sys = await serverOf(kind, o, kind === 'v1' ? ['--ping-interval-ms', '600000'] : []);
  let gens = [];
  try {
    await sleep(o.settleMs);
    // Two readings 2 s apart, the second kept: a server still handing start-up memory back to the system
    // (Soketi did) would otherwise show a negative delta.
    await memAfterGc(sys.pids());
    await sleep(2000);
    const before = await memAfterGc(sys.pids());
    const opened = await openMembers({
      n: o.pusherIdleConns,
      procs: o.pusherIdleProcs,
      ...loadOf(kind, o),
      port: sys.port,
      room: 'idle',
      rooms: o.pusherIdleChannels,
      concurrency: 200,
    });
    gens = opened.gens;
    log(`pusher idle ${kind}: ${opened.joined} subscribed in ${round(opened.seconds, 1)} s (failures ${opened.failures})`);
    await sleep(o.settleMs);
    const after = await memAfterGc(sys.pids());
    const n = opened.joined;
    return {
      connections: n,
      channels: o.pusherIdleChannels,
      failures: opened.failures,
      connectSeconds: round(opened.seconds, 1),
      rssPerConnKB: round((after.rss - before.rss) / n / 1024),
      heapPerConnKB: round((after.heapUsed - before.heapUsed) / n / 1024),
      rssMB: [round(before.rss / 1048576, 1), round(after.rss / 1048576, 1)],
      heapMB: [round(before.heapUsed / 1048576, 1), round(after.heapUsed / 1048576, 1)],
    };
  } finally {
    await closeLoad(gens);
    await sys.stop();
  }
}

async function hot(kind, o) {
  const sys = await serverOf(kind, o);
  let gens = [];
  let pub = null;
  const sb = kind !== 'soketi';
  try {
    const common = { ...loadOf(kind, o), port: sys.port, room: 'hot', concurrency: 200, sampleEvery: o.sampleEvery };
    const opened = await openMembers({ n: o.pusherHotMembers, procs: o.pusherHotProcs, ...common });
    gens = opened.gens;
    const publisher = (mode) =>
      kind === 'v1' || kind === 'pusherWs'
        ? openPublisher({ ...common, proto: 'sb', mode, window: o.window, rate: o.pusherHotRate })
        : openPublisher({
            ...common,
            proto: 'pusher',
            ...(kind === 'v1Http' ? { api: 'v1' } : {}),
            key: BENCH_APP.key,
            streams: o.pusherStreams,
            appId: BENCH_APP.id,
            secret: BENCH_APP.secret,
            mode,
            rate: o.pusherHotRate,
          });
    pub = await publisher('flat');
    log(`pusher hot ${kind}: ${opened.joined} subscribers + publisher ready in ${round(opened.seconds, 1)} s`);
    await sleep(1000);
    const window = (durationS) =>
      measureWindow({
        gens,
        publishers: [pub],
        members: opened.joined,
        durationMs: durationS * 1000,
        serverPids: sys.pids,
        metricsPort: sb ? sys.port : undefined,
      });
    const flat = await window(o.pusherHotSeconds);
    log(`pusher hot ${kind} flat: ${flat.deliveriesPerSec}/s (${flat.ackedPerSec} events/s), cpu ${flat.serverCpuPct} %, late ${flat.late}, lost ${flat.lost}`);
    await closeLoad([pub]);
    pub = null;
    await sleep(2000);
    pub = await publisher('rate');
    const rate = await window(o.pusherHotRateSeconds);
    log(`pusher hot ${kind} ${o.pusherHotRate}/s: p50 ${rate.latencyMs.p50} p99 ${rate.latencyMs.p99} ms, lost ${rate.lost}`);
    const publishPath =
      kind === 'v1' || kind === 'pusherWs'
        ? `v1 WebSocket, ${o.window} in flight`
        : `${kind === 'v1Http' ? 'POST /api/publish' : 'Pusher HTTP API'}, ${o.pusherStreams} connections × 1 in flight`;
    return { members: opened.joined, publishPath, flat, rate };
  } finally {
    await closeLoad([...gens, ...(pub ? [pub] : [])]);
    await sys.stop();
  }
}

export async function pusher(o) {
  const out = { failed: [] };
  const systems = ['v1', 'pusher'];
  if (o.pusherSoketi) {
    try {
      out.soketi = ensureSoketi();
      systems.push('soketi');
    } catch (err) {
      const why = String(err?.stderr ?? err?.message ?? err).slice(-1500);
      out.soketi = { error: `Soketi could not be installed: ${why}` };
      log(`pusher: ${out.soketi.error}`);
    }
  }
  // A variant that fails is recorded (out.failed) and the others go on.
  const variant = async (group, key, name, fn) => {
    const holder = {};
    await runVariant(holder, 'v', name, fn);
    (out[group] ??= {})[key] = holder.v;
    out.failed.push(...(holder.failed ?? []));
  };
  const parts = o.pusherParts.split(',');
  if (parts.includes('idle')) for (const kind of systems) await variant('idle', kind, `pusher idle ${kind}`, () => idle(kind, o));
  if (parts.includes('hot')) for (const kind of [...systems, 'pusherWs', 'v1Http']) await variant('hot', kind, `pusher hot ${kind}`, () => hot(kind, o));
  if (parts.includes('churn'))
    for (const kind of ['switchboard', ...(systems.includes('soketi') ? ['soketi'] : [])])
      await variant('churn', kind, `pusher churn ${kind}`, () => churn(kind, o));
  out.ratios = ratios(out);
  return out;
}

/**
 * The figures against each other. Memory: `v1 / Pusher` KB per connection (≥ 0.8 means the Pusher endpoint
 * needs at most 1.25× v1's memory), and Pusher / Soketi. Deliveries/s: Pusher / v1 (target ≥ 0.8), Pusher / Soketi.
 */
export function ratios(out) {
  const i = out.idle ?? {};
  const h = out.hot ?? {};
  const r = {
    idleRssV1OverPusher: ratio(i.v1?.rssPerConnKB, i.pusher?.rssPerConnKB),
    idleHeapV1OverPusher: ratio(i.v1?.heapPerConnKB, i.pusher?.heapPerConnKB),
    // A delta at or below 0 is under the reading's resolution at this size: no ratio.
    idleRssPusherOverSoketi: i.soketi?.rssPerConnKB > 0 ? ratio(i.pusher?.rssPerConnKB, i.soketi.rssPerConnKB) : null,
    idleHeapPusherOverSoketi: ratio(i.pusher?.heapPerConnKB, i.soketi?.heapPerConnKB),
    hotPusherOverV1: ratio(h.pusher?.flat.deliveriesPerSec, h.v1?.flat.deliveriesPerSec),
    hotPusherOverSoketi: ratio(h.pusher?.flat.deliveriesPerSec, h.soketi?.flat.deliveriesPerSec),
    hotPusherWsOverV1: ratio(h.pusherWs?.flat.deliveriesPerSec, h.v1?.flat.deliveriesPerSec),
    hotPusherOverV1Http: ratio(h.pusher?.flat.deliveriesPerSec, h.v1Http?.flat.deliveriesPerSec),
    p99PusherOverSoketi: ratio(h.pusher?.rate.latencyMs.p99, h.soketi?.rate.latencyMs.p99),
  };
  r.idleTargetMet = r.idleRssV1OverPusher === null ? null : r.idleRssV1OverPusher >= 0.8;
  r.hotTargetMet = r.hotPusherOverV1 === null ? null : r.hotPusherOverV1 >= 0.8;
  return r;
}
