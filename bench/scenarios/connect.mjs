/**
 * Scenario `connect` (a diagnosis, `--only connect`, not in the default run): how fast one node accepts
 * connections that each connect and join a room, embedded and in cluster mode, as it holds more of them.
 * `connectConns` connections are opened in slices of `connectSlice` (over `connectRooms` rooms) and the
 * joins/s of each slice reported, so a cost that grows with the connections already held shows as a
 * falling rate. The node runs on core 0, the load generators on core 1.
 */
import { closeLoad, openMembers } from '../lib/load.mjs';
import { log } from '../lib/procs.mjs';
import { round } from '../lib/stats.mjs';
import { startSystem } from '../lib/systems.mjs';
import { getInfra } from './cluster.mjs';
import { SB_BENCH_FLAGS } from './single.mjs';

async function rates(o, mode) {
  const inf = mode === 'cluster' ? await getInfra(o) : null;
  const cluster = inf === null ? undefined : { natsUrl: inf.natsUrl, redisUrl: inf.redisUrl, dbUrl: inf.dbUrl, nodeId: 'connect' };
  const sys = await startSystem('switchboard', { name: `connect-${mode}`, cluster, extra: [...SB_BENCH_FLAGS, '--ping-interval-ms', '600000'] });
  const gens = [];
  const joinsPerSec = [];
  let failures = 0;
  try {
    for (let done = 0; done < o.connectConns; done += o.connectSlice) {
      const n = Math.min(o.connectSlice, o.connectConns - done);
      const opened = await openMembers({
        n,
        procs: 2,
        proto: 'sb',
        port: sys.port,
        room: 'r',
        rooms: o.connectRooms,
        concurrency: 300,
        userPrefix: `s${done}-`,
      });
      gens.push(...opened.gens);
      failures += opened.failures;
      joinsPerSec.push(round(opened.joined / opened.seconds, 0));
      log(`connect ${mode}: ${done + opened.joined} held, the last ${n} at ${joinsPerSec.at(-1)}/s (failures ${opened.failures})`);
    }
    return { joinsPerSec, failures };
  } finally {
    await closeLoad(gens);
    await sys.stop();
  }
}

export async function connectRate(o) {
  const out = { conns: o.connectConns, slice: o.connectSlice, rooms: o.connectRooms };
  for (const mode of ['embedded', 'cluster']) out[mode] = await rates(o, mode);
  return out;
}
