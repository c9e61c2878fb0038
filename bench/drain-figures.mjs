#!/usr/bin/env node
/**
 * A drain under load (issue 12 §2), measured on real node processes against throwaway servers started here on
 * free ports (nats-server -js, redis-server, PostgreSQL), deleted at the end:
 *
 * 2 cluster nodes A and B; --clients SDK clients (the SDK of the build measured, default options) spread over
 * --procs processes, all on A, in --rooms rooms; messages published over HTTP through B at --rate msg/s (round
 * robin over the rooms, idempotent retries) for the whole run. After --settle s, new sockets are routed to B
 * (a load balancer taking A out) and A gets SIGTERM. Every --every ms until A has exited, an upgrade and a
 * `/readyz` are sent to A, each on a fresh connection (10 s deadline). Reported:
 *   - probes: answered 503 / refused (listener closed) / reset / no answer in 10 s, and the longest answer;
 *   - A's longest event-loop stall from SIGTERM to exit (bench/lib/loop-stall.mjs, preloaded: the longest gap
 *     of a 5 ms timer, and monitorEventLoopDelay's max);
 *   - drain duration (SIGTERM to exit) and the span of the clients' closes;
 *   - upgrades admitted at B per client (switchboard_admission_total{result="admitted"}) once every client is
 *     on B and the count has not moved for 3 s;
 *   - what the clients saw: close codes, reconnect attempts, duplicates, gaps, resets, and clients missing the
 *     last acked message of their room.
 *
 * Usage (repository root): node bench/drain-figures.mjs [--dist dist] [--clients 5000] [--procs 4] [--rooms 50]
 *   [--rate 25] [--settle 5] [--every 250] [--after 120] [--out f.json] [--profile dir (node A's --cpu-prof)]
 * --dist picks the build to measure, server and SDK (e.g. another checkout's dist/ for a "before" figure).
 * JSON on stdout, progress on stderr. Children are stopped by pid. Run it alone on the machine.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeLoad, waitMsg } from './lib/load.mjs';
import { alive, listening, log, sleep, start, startInfra, stopAll, tmpDir } from './lib/procs.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const opt = { dist: join(ROOT, 'dist'), clients: 5000, procs: 4, rooms: 50, rate: 25, settle: 5, every: 250, after: 120, out: null, profile: null };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt)) throw new Error(`unknown option ${process.argv[i]}`);
  const v = process.argv[++i];
  opt[k] = k === 'dist' || k === 'out' || k === 'profile' ? resolve(v) : Number(v);
}
const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const result = {
  setup: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadBefore: loadavg(), options: opt },
  figures: {},
};

let infra;
const stallFile = join(tmpDir('sb-drain-'), 'stall.json');

function startNode(id, env = {}) {
  const child = start(
    id,
    process.execPath,
    [
      ...(opt.profile !== null && id === 'node-a' ? ['--cpu-prof', '--cpu-prof-dir', opt.profile] : []),
      '--import',
      join(HERE, 'lib', 'loop-stall.mjs'),
      join(opt.dist, 'cli', 'main.js'),
      'start',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--dev',
      '--data-dir',
      tmpDir('sb-drain-'),
      '--node-id',
      id,
      '--nats',
      infra.natsUrl,
      '--redis',
      infra.redisUrl,
      '--database',
      infra.dbUrl,
    ],
    { env },
  );
  return listening(child).then((port) => ({ child, port, url: `http://127.0.0.1:${port}` }));
}

/** One probe on a fresh connection: { outcome: answered|refused|reset|hang, status, ms, at (Date.now() at its start) }. */
function probe(port, path, upgrade) {
  const t0 = performance.now();
  const at = Date.now();
  return new Promise((res) => {
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      res({ ...r, ms: Math.round(performance.now() - t0), at });
    };
    const headers = upgrade
      ? { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' }
      : { Connection: 'close' };
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers });
    const timer = setTimeout(() => finish({ outcome: 'hang' }), 10_000);
    req.on('response', (r) => {
      r.on('error', () => undefined);
      r.resume();
      finish({ outcome: 'answered', status: r.statusCode });
    });
    req.on('upgrade', (r, socket) => {
      socket.destroy();
      finish({ outcome: 'answered', status: r.statusCode });
    });
    req.on('error', (err) => finish({ outcome: err.code === 'ECONNREFUSED' ? 'refused' : 'reset', error: err.code }));
    req.end();
  });
}

async function admitted(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (result) => {
    const line = text.split('\n').find((l) => l.startsWith('switchboard_admission_total{') && l.includes(`result="${result}"`));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  };
  return { admitted: get('admitted'), refusedRate: get('refused_rate'), refusedMax: get('refused_max') };
}

const gens = [];
const askAll = (cmd, ev, extra = {}) =>
  Promise.all(
    gens.map((g) => {
      const p = waitMsg(g, (m) => m.ev === ev, 60_000, `${ev} from clients pid ${g.pid}`);
      g.send({ cmd, ...extra });
      return p;
    }),
  );

async function main() {
  log(`drain figures: ${opt.clients} clients, ${opt.rooms} rooms, build ${opt.dist}; load ${loadavg()}`);
  infra = await startInfra();
  const a = await startNode('node-a', { SB_LOOP_STALL_FILE: stallFile });
  const b = await startNode('node-b');
  log(`node-a :${a.port}, node-b :${b.port}`);

  const t0 = Date.now();
  const per = Math.ceil(opt.clients / opt.procs);
  for (let k = 0; k < opt.procs; k++) {
    const n = Math.min(per, opt.clients - per * k);
    if (n <= 0) break;
    const g = start(`clients-${k}`, process.execPath, [join(HERE, 'lib', 'sdk-clients.mjs')], { ipc: true });
    g.send({
      cmd: 'open',
      dist: opt.dist,
      url: `ws://127.0.0.1:${a.port}/ws`,
      n,
      rooms: opt.rooms,
      roomOffset: k * per,
      userPrefix: `c${k}-`,
      ratePerSec: 2000 / opt.procs,
    });
    gens.push(g);
  }
  await Promise.all(gens.map((g) => waitMsg(g, (m) => m.ev === 'ready', 600_000, 'clients joined')));
  result.figures.connectSeconds = (Date.now() - t0) / 1000;
  log(`${opt.clients} clients joined on node-a in ${result.figures.connectSeconds} s`);

  // Messages flow through B for the whole run.
  const ackedMax = new Map();
  let publishing = true;
  let publishFailures = 0;
  const publisher = (async () => {
    const interval = 1000 / opt.rate;
    let next = performance.now();
    for (let i = 0; publishing; i++) {
      const room = `r${i % opt.rooms}`;
      const idem = `p-${i}`;
      void (async () => {
        for (let attempt = 0; attempt < 20; attempt++) {
          try {
            const r = await fetch(`${b.url}/api/publish`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ room, data: { i }, idem }),
              signal: globalThis.AbortSignal.timeout(10_000),
            });
            const body = await r.json();
            if (r.status === 200) {
              ackedMax.set(room, Math.max(ackedMax.get(room) ?? 0, body.seq));
              return;
            }
          } catch {
            /* retried */
          }
          publishFailures++;
          await sleep(200);
        }
      })();
      next += interval;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  await sleep(opt.settle * 1000);
  const beforeB = await admitted(b.url);

  // A out of rotation, then SIGTERM.
  const termAt = Date.now();
  await askAll('mark', 'marked', { at: termAt });
  await askAll('route', 'routed', { url: `ws://127.0.0.1:${b.port}/ws` });
  const exited = new Promise((r) => a.child.once('exit', (code) => r({ code, at: Date.now() })));
  result.setup.loadAtSigterm = loadavg();
  process.kill(a.child.pid, 'SIGTERM');
  log('SIGTERM to node-a');
  const probes = [];
  let aExit = null;
  void exited.then((e) => (aExit = e));
  while (aExit === null) {
    probes.push(probe(a.port, '/ws', true).then((p) => ({ kind: 'upgrade', ...p })));
    probes.push(probe(a.port, '/readyz', false).then((p) => ({ kind: 'readyz', ...p })));
    await sleep(opt.every);
  }
  probes.push(probe(a.port, '/ws', true).then((p) => ({ kind: 'upgrade', ...p })));
  probes.push(probe(a.port, '/readyz', false).then((p) => ({ kind: 'readyz', ...p })));
  const probed = await Promise.all(probes);
  const { code, at } = await exited;
  log(`node-a exited ${code} after ${at - termAt} ms`);
  const summary = (kind) => {
    const ps = probed.filter((p) => p.kind === kind);
    const count = (f) => ps.filter(f).length;
    return {
      total: ps.length,
      answered503: count((p) => p.outcome === 'answered' && p.status === 503),
      answeredOther: count((p) => p.outcome === 'answered' && p.status !== 503),
      refused: count((p) => p.outcome === 'refused'),
      reset: count((p) => p.outcome === 'reset'),
      noAnswerIn10s: count((p) => p.outcome === 'hang'),
      longestAnswerMs: Math.max(0, ...ps.filter((p) => p.outcome === 'answered').map((p) => p.ms)),
      slowestAnswers: ps
        .filter((p) => p.outcome === 'answered')
        .sort((x, y) => y.ms - x.ms)
        .slice(0, 3)
        .map((p) => `${p.ms} ms @${p.at - termAt}`),
      // When (ms after SIGTERM) the probes that were not answered started, and how they ended.
      notAnswered: ps.filter((p) => p.outcome !== 'answered').map((p) => `${p.outcome}${p.error ? ` ${p.error}` : ''} @${p.at - termAt}`),
    };
  };
  result.figures.probes = { upgrade: summary('upgrade'), readyz: summary('readyz') };
  // A's own account (log lines): the drain's closes and terminations, and when it logged them.
  const logged = (msg) => {
    for (const line of a.child.out.split('\n')) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      try {
        const j = JSON.parse(line);
        return { ...j, atMs: Date.parse(j.time) - termAt };
      } catch {
        /* cut line */
      }
    }
    return null;
  };
  const drained = logged('drained');
  const stopped = logged('stopped');
  result.figures.drain = {
    exitCode: code,
    sigtermToExitMs: at - termAt,
    logged:
      drained === null
        ? null
        : { closed: drained.closed, terminated: drained.terminated, drainMs: drained.ms, drainedAtMs: drained.atMs, stoppedAtMs: stopped?.atMs },
  };
  try {
    result.figures.loopStallOnA = JSON.parse(readFileSync(stallFile, 'utf8'));
  } catch {
    result.figures.loopStallOnA = null;
  }

  // Every client on B, then B's admissions until they stop moving.
  const deadline = Date.now() + opt.after * 1000;
  let stats;
  for (;;) {
    stats = await askAll('stats', 'stats');
    const onB = stats.reduce((s, x) => s + (x.onNode['node-b'] ?? 0), 0);
    const joined = stats.reduce((s, x) => s + x.joined, 0);
    if ((onB === opt.clients && joined === opt.clients) || Date.now() > deadline) break;
    await sleep(1000);
  }
  const allOnBAt = Date.now();
  let afterB = await admitted(b.url);
  for (let still = 0; still < 3 && Date.now() < deadline + 30_000;) {
    await sleep(1000);
    const now = await admitted(b.url);
    still = now.admitted === afterB.admitted ? still + 1 : 0;
    afterB = now;
  }
  publishing = false;
  await publisher;
  // Let the last publishes reach every member (their acks were counted).
  const last = new Map(ackedMax);
  const catchUp = Date.now() + 30_000;
  let behind;
  for (;;) {
    stats = await askAll('stats', 'stats');
    behind = stats.flatMap((x) => x.lastSeqs).filter(([room, seq]) => seq < (last.get(room) ?? 0)).length;
    if (behind === 0 || Date.now() > catchUp) break;
    await sleep(500);
  }
  const closeTimes = stats.flatMap((x) => x.closeTimes).map((t) => t - termAt);
  const closeCodes = {};
  for (const s of stats) for (const [k, v] of Object.entries(s.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
  const sum = (f) => stats.reduce((s, x) => s + f(x), 0);
  const onB = sum((x) => x.onNode['node-b'] ?? 0);
  result.figures.drain.closes = {
    count: closeTimes.length,
    firstMs: Math.min(...closeTimes),
    lastMs: Math.max(...closeTimes),
    codes: closeCodes,
  };
  result.figures.reconnect = {
    clientsOnB: onB,
    allOnBAfterMs: onB === opt.clients ? allOnBAt - termAt : null,
    upgradesAdmittedAtB: afterB.admitted - beforeB.admitted,
    admittedPerClient: Math.round(((afterB.admitted - beforeB.admitted) / opt.clients) * 1000) / 1000,
    refusedAtB: { rate: afterB.refusedRate - beforeB.refusedRate, max: afterB.refusedMax - beforeB.refusedMax },
    sdkAttempts: sum((x) => x.attemptsAfter),
    sdkConnected: sum((x) => x.connectedAfter),
  };
  result.figures.delivery = {
    received: sum((x) => x.received),
    duplicates: sum((x) => x.dups),
    gapsSeen: sum((x) => x.gaps),
    resets: sum((x) => x.resets),
    clientsMissingLastMessage: behind,
    publishRetries: publishFailures,
  };
  result.setup.loadAfter = loadavg();
}

let failed = null;
try {
  await main();
} catch (err) {
  failed = err;
  result.error = String(err?.stack ?? err);
}
await closeLoad(gens.filter(alive));
await stopAll();
const text = JSON.stringify(result, null, 2);
if (opt.out !== null) writeFileSync(opt.out, text + '\n');
process.stdout.write(text + '\n');
process.exit(failed === null ? 0 : 1);
