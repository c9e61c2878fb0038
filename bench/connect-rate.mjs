/**
 * How fast one node accepts connections that each join a room, embedded vs cluster mode, at growing
 * counts: `node bench/connect-rate.mjs [--conns 20000] [--rooms 1000] [--procs 2]`. The node is pinned to
 * core 0, load generators to core 1; prints joins/s per 5,000-connection slice, so a cost that grows with
 * the number of connections already held shows as a falling rate.
 */
import { closeLoad, openMembers } from './lib/load.mjs';
import { log, startInfra } from './lib/procs.mjs';
import { round } from './lib/stats.mjs';
import { startSystem } from './lib/systems.mjs';
import { SB_BENCH_FLAGS } from './scenarios/single.mjs';

const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const conns = arg('conns', 20000);
const rooms = arg('rooms', 1000);
const slice = arg('slice', 5000);
const mode = process.argv.includes('--cluster-only') ? ['cluster'] : process.argv.includes('--embedded-only') ? ['embedded'] : ['embedded', 'cluster'];

const infra = mode.includes('cluster') ? await startInfra() : null;
try {
  for (const m of mode) {
    const cluster = m === 'cluster' ? { natsUrl: infra.natsUrl, redisUrl: infra.redisUrl, dbUrl: infra.dbUrl } : undefined;
    const sys = await startSystem('switchboard', { cluster, extra: [...SB_BENCH_FLAGS, '--ping-interval-ms', '600000'] });
    const gens = [];
    const rates = [];
    try {
      for (let done = 0; done < conns; done += slice) {
        const opened = await openMembers({ n: slice, procs: 2, proto: 'sb', port: sys.port, room: 'r', rooms, concurrency: 300, userPrefix: `s${done}-` });
        gens.push(...opened.gens);
        rates.push(round(opened.joined / opened.seconds, 0));
        log(`${m}: ${done + opened.joined} held, last ${slice} at ${rates.at(-1)}/s (failures ${opened.failures})`);
      }
      console.log(JSON.stringify({ mode: m, conns, rooms, slice, joinsPerSec: rates }));
    } finally {
      await closeLoad(gens);
      await sys.stop();
    }
  }
} finally {
  await infra?.stop();
}
