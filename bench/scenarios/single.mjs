/**
 * Single-process scenarios, run for Switchboard, Socket.IO and the `ws` floor:
 *   1. idle memory: N idle connections on one server, each joined to one of `idleRooms` (100) rooms (1: all
 *      in one room); RSS and heap delta per connection between two readings taken after a forced full GC.
 *   3. hot room: one room of M members; (a) one publisher flat out (window in flight) for D s:
 *      deliveries/s received; (b) 10 publishes/s for D s: publish → receive p50/p99; server CPU for both.
 */
import { closeLoad, openMembers } from '../lib/load.mjs';
import { measureWindow, openPublisher } from '../lib/measure.mjs';
import { log, sleep } from '../lib/procs.mjs';
import { round } from '../lib/stats.mjs';
import { memAfterGc, startSystem } from '../lib/systems.mjs';

/** Flags that keep Switchboard's own limits out of the way of a benchmark ramp (not of its work). */
export const SB_BENCH_FLAGS = ['--admission-rate', '100000', '--admission-burst', '100000', '--max-connections', '200000'];

export async function idleMemory(kind, o) {
  const extra = kind === 'switchboard' ? [...SB_BENCH_FLAGS, '--ping-interval-ms', '600000'] : [];
  const sys = await startSystem(kind, { extra });
  let gens = [];
  try {
    await sleep(o.settleMs);
    const before = await memAfterGc(sys.pids());
    const opened = await openMembers({ n: o.idleConns, procs: o.idleProcs, proto: sys.proto, port: sys.port, room: 'r', rooms: o.idleRooms, concurrency: 200 });
    gens = opened.gens;
    log(`idle ${kind}: ${opened.joined} joined in ${opened.seconds} s (failures ${opened.failures})`);
    await sleep(o.settleMs);
    const after = await memAfterGc(sys.pids());
    const n = opened.joined;
    return {
      connections: n,
      rooms: o.idleRooms,
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

export async function hotRoom(kind, o) {
  const sys = await startSystem(kind, { extra: kind === 'switchboard' ? SB_BENCH_FLAGS : [] });
  let gens = [];
  let pub = null;
  try {
    const common = { proto: sys.proto, port: sys.port, room: 'hot', concurrency: 200, sampleEvery: o.sampleEvery };
    const opened = await openMembers({ n: o.hotMembers, procs: o.hotProcs, ...common });
    gens = opened.gens;
    pub = await openPublisher({ ...common, mode: 'flat', window: o.window });
    log(`hot ${kind}: ${opened.joined} members + publisher joined in ${opened.seconds} s`);
    await sleep(1000);
    const flat = await measureWindow({
      gens,
      publishers: [pub],
      members: opened.joined,
      durationMs: o.hotSeconds * 1000,
      serverPids: sys.pids,
      metricsPort: kind === 'switchboard' ? sys.port : undefined,
    });
    log(
      `hot ${kind} flat: ${flat.deliveriesPerSec}/s, cpu ${flat.serverCpuPct} %, late ${flat.late}, lost ${flat.lost}${flat.deliveriesPerWrite === null ? '' : `, ${flat.deliveriesPerWrite} deliveries per write`}`,
    );
    await closeLoad([pub]);
    // Let work left from the flat phase (history writes, GC) finish, so it does not land in the latency window.
    await sleep(2000);
    pub = await openPublisher({ ...common, mode: 'rate', rate: o.hotRate });
    const rate = await measureWindow({
      gens,
      publishers: [pub],
      members: opened.joined,
      durationMs: o.hotRateSeconds * 1000,
      serverPids: sys.pids,
      metricsPort: kind === 'switchboard' ? sys.port : undefined,
    });
    log(`hot ${kind} ${o.hotRate}/s: p50 ${rate.latencyMs.p50} p99 ${rate.latencyMs.p99} ms, cpu ${rate.serverCpuPct} %`);
    return { members: opened.joined, flat, rate };
  } finally {
    await closeLoad([...gens, ...(pub ? [pub] : [])]);
    await sys.stop();
  }
}
