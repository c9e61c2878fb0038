/**
 * Scenarios that need nats-server / redis-server / PostgreSQL (started once per run, on free ports):
 *   2. workers: `switchboard start --workers N` holding many idle connections: total RSS, connect rate.
 *   4. cross-node: 3 server processes, members spread over them, a publisher on every node: deliveries/s
 *      flat out, p50/p99 at a fixed rate; Switchboard over NATS, over Redis pub/sub, Socket.IO + Redis adapter.
 *   5. durable: acked publishes/s and rows/s persisted into PostgreSQL, with the cluster flags.
 *   6. storm: SDK-like clients on a node killed with SIGKILL and restarted; time until all are back and
 *      have every missed message; jitter on and off; peak handshakes/s against the admission limit; webhooks
 *      (occupancy and members of every room, default 5 s grace) sent per reconnecting client.
 */
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { ask, closeLoad, openMembers, spawnLoad, waitMsg } from '../lib/load.mjs';
import { measureWindow, openPublisher } from '../lib/measure.mjs';
import { startInfra } from '../lib/infra.mjs';
import { freePort, log, sleep, unowned } from '../lib/procs.mjs';
import { runVariant } from '../lib/scenario.mjs';
import { round } from '../lib/stats.mjs';
import { memAfterGc, ROOT, startSystem } from '../lib/systems.mjs';
import { SB_BENCH_FLAGS } from './single.mjs';
import { startWebhookCounter } from '../lib/webhook-counter.mjs';

let infra = null;
/** The run's nats-server, redis-server and PostgreSQL, started once, owned by the run (not by one scenario). */
export async function getInfra(o) {
  if (infra === null) {
    infra = await unowned(() => startInfra());
    o.infraVersions = infra.versions;
  }
  return infra;
}
const clusterOf = (inf, extra = {}) => ({ natsUrl: inf.natsUrl, redisUrl: inf.redisUrl, dbUrl: inf.dbUrl, ...extra });

export async function workers(o) {
  const inf = await getInfra(o);
  const port = await freePort();
  // Unpinned: N workers are meant to use every core; the load generators stay on core 1.
  const sys = await startSystem('switchboard', {
    port,
    core: undefined,
    cluster: clusterOf(inf),
    extra: [...SB_BENCH_FLAGS, '--ping-interval-ms', '600000', '--workers', String(o.workers)],
  });
  let gens = [];
  try {
    const deadline = Date.now() + 60000;
    while ((sys.child.out.match(/"msg":"listening"/g) ?? []).length < o.workers && Date.now() < deadline) await sleep(200);
    await sleep(o.settleMs);
    const before = (await memAfterGc(sys.pids())).rss;
    const opened = await openMembers({
      n: o.workersConns,
      procs: o.workersProcs,
      proto: 'sb',
      port,
      room: 'w',
      rooms: 1000,
      concurrency: 300,
      timeoutMs: 600000,
    });
    gens = opened.gens;
    log(`workers: ${opened.joined} joined in ${opened.seconds} s (failures ${opened.failures})`);
    await sleep(o.settleMs);
    const after = (await memAfterGc(sys.pids())).rss;
    return {
      workers: o.workers,
      processes: sys.pids().length,
      connections: opened.joined,
      failures: opened.failures,
      connectSeconds: round(opened.seconds, 1),
      connectPerSec: round(opened.joined / opened.seconds, 0),
      totalRssMB: round(after / 1048576, 0),
      rssPerConnKB: round((after - before) / opened.joined / 1024),
      note: 'primary + workers, RSS summed after a forced GC in each; servers unpinned, load generators on core 1; each connection joined one of 1,000 rooms',
    };
  } finally {
    await closeLoad(gens);
    await sys.stop();
  }
}

/** 3 server processes of one variant; members and one publisher per node; flat, then fixed rate. */
async function crossVariant(o, variant) {
  const inf = await getInfra(o);
  const kind = variant === 'socketio' ? 'socketio' : 'switchboard';
  const nodes = [];
  const gens = [];
  const pubs = [];
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startSystem(kind, {
          name: `${variant}-${i}`,
          cluster: clusterOf(inf, { backplane: variant === 'redis' ? 'redis' : 'nats', nodeId: `bench-${variant}-${i}` }),
          extra: kind === 'switchboard' ? SB_BENCH_FLAGS : [],
        }),
      );
    }
    const room = `x-${variant}-${Date.now()}`;
    const proto = nodes[0].proto;
    const per = Math.ceil(o.crossMembers / 3);
    const common = { proto, room, concurrency: 200, sampleEvery: 10, seqCheck: kind === 'switchboard' };
    for (let i = 0; i < 3; i++) {
      const opened = await openMembers({
        n: Math.min(per, o.crossMembers - per * i),
        procs: 1,
        port: nodes[i].port,
        ...common,
        perProc: () => ({ userPrefix: `n${i}-` }),
      });
      gens.push(...opened.gens);
    }
    const serverPids = () => nodes.flatMap((n) => n.pids());
    for (let i = 0; i < 3; i++)
      pubs.push(await openPublisher({ ...common, port: nodes[i].port, user: `pub${i}`, userPrefix: `pub${i}-`, mode: 'flat', window: o.crossWindow }));
    await sleep(1000);
    const flat = await measureWindow({ gens, publishers: pubs, members: o.crossMembers, durationMs: o.crossSeconds * 1000, serverPids, drainQuietMs: 3000 });
    log(`cross ${variant} flat: ${flat.deliveriesPerSec}/s, late ${flat.late}, lost ${flat.lost}`);
    await closeLoad(pubs.splice(0));
    for (let i = 0; i < 3; i++)
      pubs.push(await openPublisher({ ...common, port: nodes[i].port, userPrefix: `pubr${i}-`, mode: 'rate', rate: o.crossRate / 3 }));
    const rate = await measureWindow({ gens, publishers: pubs, members: o.crossMembers, durationMs: o.crossSeconds * 1000, serverPids, drainQuietMs: 3000 });
    log(`cross ${variant} ${o.crossRate}/s: p50 ${rate.latencyMs.p50} p99 ${rate.latencyMs.p99} ms, lost ${rate.lost}`);
    return { flat, rate };
  } finally {
    await closeLoad([...gens, ...pubs]);
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

export async function crossNode(o) {
  const out = { members: o.crossMembers, note: 'servers on core 0, load generators on core 1, nats/redis/postgres unpinned' };
  const variants = ['nats', 'redis', ...(o.systems.includes('socketio') ? ['socketio'] : [])];
  for (const v of variants) await runVariant(out, v, `cross ${v}`, () => crossVariant(o, v));
  return out;
}

/** Rows in PostgreSQL's messages table. */
async function pgCount(dbUrl) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const r = await c.query('SELECT count(*)::bigint AS n FROM messages');
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

export async function durable(o) {
  const inf = await getInfra(o);
  const sys = await startSystem('switchboard', { cluster: clusterOf(inf), extra: SB_BENCH_FLAGS });
  const pubs = [];
  try {
    const stamp = Date.now();
    for (let i = 0; i < o.durablePublishers; i++)
      pubs.push(await openPublisher({ proto: 'sb', port: sys.port, room: `d${stamp}-${i}`, userPrefix: `dp${i}-`, mode: 'flat', window: o.durableWindow }));
    const rows0 = await pgCount(inf.dbUrl);
    const samples = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push({ t: Date.now(), n: (await pgCount(inf.dbUrl)) - rows0 });
        await sleep(250);
      }
    })();
    const w = await measureWindow({ gens: [], publishers: pubs, members: 0, durationMs: o.durableSeconds * 1000, serverPids: sys.pids });
    // Wait until every acked publish is a row (or 30 s).
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline && (samples.at(-1)?.n ?? 0) < w.acked) await sleep(250);
    sampling = false;
    await sampler;
    const persisted = samples.at(-1)?.n ?? 0;
    const first = samples.find((s) => s.n > 0);
    const done = samples.find((s) => s.n >= persisted);
    const persistedPerSec = first && done && done.t > first.t ? round(persisted / ((done.t - first.t) / 1000), 0) : null;
    return {
      durableLog:
        "cluster mode: JetStream durable log (nats-server -js) + the node's PostgreSQL history writer; publishes over WebSocket through one gateway (RoomLog in Redis, JetStream append, backplane fan-out)",
      publishers: o.durablePublishers,
      windowPerPublisher: o.durableWindow,
      acked: w.acked,
      ackedPerSec: w.ackedPerSec,
      publishErrors: w.publishErrors,
      publishErrorSample: w.publishErrorSample,
      ackLatencyMs: w.ackLatencyMs,
      persisted,
      persistedPerSec,
      serverCpuPct: w.serverCpuPct,
      note: 'persistedPerSec = rows counted in PostgreSQL messages (SELECT count(*) every 250 ms) from the first row seen to the last',
    };
  } finally {
    await closeLoad(pubs);
    await sys.stop();
  }
}

/** Highest sum of 10 consecutive 100 ms buckets (handshakes answered 101 within any 1 s). */
function peakPerSecond(bucketLists) {
  const m = new Map();
  for (const list of bucketLists) for (const [b, v] of list) m.set(b, (m.get(b) ?? 0) + v);
  const keys = [...m.keys()].sort((a, b) => a - b);
  let peak = 0;
  for (const k of keys) {
    let s = 0;
    for (let j = 0; j < 10; j++) s += m.get(k + j) ?? 0;
    peak = Math.max(peak, s);
  }
  return peak;
}

/**
 * The restarted node's own count of admitted upgrades (`switchboard_admission_total{result="admitted"}`),
 * read from /metrics every 100 ms. `stop({ rate, burst })` checks the token bucket's promise on every pair
 * of samples: at most burst + rate × Δt admitted between two samples Δt apart (`worstExcess` ≤ 0 means it
 * held everywhere; a node without admission control exceeds it by thousands within the first second).
 * It also gives the most admitted between two samples at least 1 s apart, divided by their distance (a lower
 * bound of the server-side peak rate: a busy node answers /metrics late, so samples can be seconds apart
 * during the burst; `medianIntervalMs` is the typical spacing).
 */
function sampleAdmitted(port) {
  const samples = [[performance.now(), 0]]; // the counter starts at 0 with the restarted node
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith('switchboard_admission_total{') && l.includes('result="admitted"'));
        if (line !== undefined) samples.push([performance.now(), Number(line.slice(line.lastIndexOf(' ') + 1))]);
      } catch {
        // the node is still starting
      }
      await sleep(100);
    }
  })();
  return {
    async stop({ rate, burst }) {
      running = false;
      await loop;
      let worstExcess = -Infinity;
      let peakPerSec = 0;
      for (let i = 0; i < samples.length; i++) {
        for (let j = i + 1; j < samples.length; j++) {
          const dt = (samples[j][0] - samples[i][0]) / 1000;
          const n = samples[j][1] - samples[i][1];
          worstExcess = Math.max(worstExcess, n - (burst + rate * dt));
          if (dt >= 1) peakPerSec = Math.max(peakPerSec, n / dt);
        }
      }
      const gaps = samples
        .slice(1)
        .map((x, k) => x[0] - samples[k][0])
        .sort((a, b) => a - b);
      return {
        samples: samples.length,
        medianIntervalMs: gaps.length > 0 ? round(gaps[gaps.length >> 1], 0) : null,
        worstExcess: Number.isFinite(worstExcess) ? Math.ceil(worstExcess) : null,
        peakPerSec: round(peakPerSec, 0),
      };
    },
  };
}

async function stormRun(o, jitter) {
  const inf = await getInfra(o);
  const port = await freePort();
  // Webhooks on for the storm's tenant (every room: occupancy and members), as an app's backend would have them.
  const hooks = await startWebhookCounter();
  // (--storm-webhooks 0: without them, to compare the storm's own figures.)
  const webhooks = o.stormWebhooks ? ['--webhooks', JSON.stringify([{ tenant: 'default', secret: 'bench-webhook-secret-0123', url: hooks.url }])] : [];
  const admission = ['--admission-rate', String(o.stormAdmissionRate), '--admission-burst', String(o.stormAdmissionBurst), '--max-connections', '200000'];
  const startA = () =>
    startSystem('switchboard', { port, name: 'storm-a', cluster: clusterOf(inf, { nodeId: 'storm-a' }), extra: [...admission, ...webhooks] });
  let a = await startA();
  const b = await startSystem('switchboard', { name: 'storm-b', cluster: clusterOf(inf, { nodeId: 'storm-b' }), extra: [...SB_BENCH_FLAGS, ...webhooks] });
  const room = `s-${jitter ? 'on' : 'off'}-${Date.now()}`;
  const gens = [];
  let pub = null;
  try {
    const per = Math.ceil(o.stormClients / o.stormProcs);
    // Rooms of ~100 clients (one room of 15,000 would make every join a presence diff to 15,000 members).
    const rooms = Math.min(100, Math.max(1, Math.ceil(o.stormClients / 100))); // the publisher joins them all: at most maxRoomsPerConnection (100)
    const backoffModule = pathToFileURL(join(ROOT, 'dist', 'client', 'backoff.js')).href;
    for (let k = 0; k < o.stormProcs; k++) {
      gens.push(
        spawnLoad({
          role: 'storm',
          n: Math.min(per, o.stormClients - per * k),
          port,
          room,
          rooms,
          roomOffset: k * per,
          jitter,
          backoffModule,
          userPrefix: `s${k}-`,
          concurrency: 200,
        }),
      );
    }
    await Promise.all(gens.map((g) => waitMsg(g, (m) => m.ev === 'ready', 300000, 'storm clients ready')));
    log(`storm jitter ${jitter}: ${o.stormClients} clients joined; publishing ${o.stormRate}/s through node b`);
    pub = await openPublisher({ proto: 'sb', port: b.port, room, rooms, userPrefix: 'sp-', mode: 'rate', rate: o.stormRate });
    const t0 = Date.now() + 300;
    const publishMs = 2000 + o.stormPublishAfterKillS * 1000; // 2 s before the kill, the rest while node a is down and coming back
    const pubDone = waitMsg(pub, (m) => m.ev === 'done', publishMs + 60000, 'storm publisher done');
    pub.send({ cmd: 'go', t0, endAt: t0 + publishMs });
    await Promise.all(gens.map((g) => ask(g, 'resetHs', 'reset')));
    await sleep(2300);
    const killedAt = Date.now();
    await a.kill();
    a = await startA();
    const restartedAt = Date.now();
    const admitted = sampleAdmitted(port);
    log(`storm: node a killed and restarted in ${(restartedAt - killedAt) / 1000} s`);
    const pd = await pubDone;
    const lastSeqByRoom = pd.lastSeqByRoom;
    let st = null;
    let allBackAt = null;
    const deadline = Date.now() + 180000;
    while (Date.now() < deadline) {
      st = await Promise.all(gens.map((g) => ask(g, 'stats', 'stats', { lastSeqByRoom })));
      const joined = st.reduce((s, x) => s + x.joined, 0);
      const behind = st.reduce((s, x) => s + x.behind, 0);
      if (joined === o.stormClients && behind === 0) {
        allBackAt = Date.now();
        break;
      }
      await sleep(250);
    }
    const server = await admitted.stop({ rate: o.stormAdmissionRate, burst: o.stormAdmissionBurst });
    // Webhooks the storm caused: events of this run's rooms decided after the kill, counted once the killed node's old
    // connections have expired (presence TTL 45 s after their last heartbeat) and a grace period (5 s) more has passed.
    // (Another run's rooms are left out: their members leaving at its end are decided meanwhile, on the same Redis.)
    const quietAt = o.stormWebhooks ? killedAt + o.stormWebhookWaitS * 1000 : 0;
    while (Date.now() < quietAt) await sleep(500);
    const stormHooks = hooks.since(killedAt, room);
    const sum = (k) => st.reduce((s, x) => s + x[k], 0);
    const lastBack = Math.max(...st.map((x) => x.lastBackAt));
    return {
      clients: o.stormClients,
      published: pd.acked,
      rooms,
      allBack: allBackAt !== null,
      reconnectedInS: lastBack > 0 ? round((lastBack - killedAt) / 1000, 1) : null,
      publishedAfterKillS: o.stormPublishAfterKillS,
      recoveredInS: allBackAt !== null ? round((allBackAt - killedAt) / 1000, 1) : null,
      restartS: round((restartedAt - killedAt) / 1000, 1),
      lost: sum('lost'),
      dups: sum('dups'),
      outOfOrder: sum('outOfOrder'),
      behind: sum('behind'),
      refusedUpgrades: sum('refused'),
      handshakes: sum('handshakes'),
      peakHandshakesPerSec: peakPerSecond(st.map((x) => x.hsPer100ms)),
      serverAdmission: server,
      webhooks:
        o.stormWebhooks === 0
          ? null
          : {
              beforeKill: hooks.since(0, room).total - stormHooks.total,
              afterKill: stormHooks.total,
              afterKillByName: stormHooks.byName,
              waitedS: o.stormWebhookWaitS,
              perReconnectingClient: round(stormHooks.total / o.stormClients, 4),
            },
    };
  } finally {
    await closeLoad([...gens, ...(pub ? [pub] : [])]);
    await Promise.all([a.stop(), b.stop()]);
    await hooks.close();
  }
}

export async function storm(o) {
  const out = {
    admissionRate: o.stormAdmissionRate,
    admissionBurst: o.stormAdmissionBurst,
    note: 'load generator: the SDK backoff functions (dist/client/backoff.js) in a lightweight raw-socket client that re-joins with since = last seq and dedupes by seq (the full SDK is too heavy per connection for 15,000 clients on one core); jitter off = the bare backoff window, so every client retries at the same instants',
    runs: {},
  };
  for (const jitter of [true, false]) {
    const key = jitter ? 'on' : 'off';
    await runVariant(out.runs, key, `storm jitter ${key}`, () => stormRun(o, jitter));
  }
  out.failed = out.runs.failed;
  delete out.runs.failed;
  return out;
}

export async function stopInfra() {
  if (infra !== null) await infra.stop();
  infra = null;
}
