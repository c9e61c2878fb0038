#!/usr/bin/env node
/**
 * `npm run bench [-- --quick] [-- --only idle,hot,...]`: Switchboard, Socket.IO 4 and the raw `ws` floor,
 * side by side in one invocation (see docs/benchmarks.md). Servers run on core 0 (`taskset -c 0`), load
 * generators on core 1; the orchestrator pins itself to core 1 too. Writes bench/results/<date>.json and
 * bench/results/<date>.md and prints the markdown table.
 *
 * Scenarios of the table, run by default: idle (1), workers (2), hot (3), cross (4), durable (5), storm (6).
 * Run only when named in --only: connect (joins/s as a node fills), services (backend services), engines
 * (the durable engines alone), pusher (the Pusher endpoint beside v1 and Soketi 1.6), embedded (an embedded
 * node per history store: time to ready, idle RSS, longest event-loop stall under 5,000 msg/s; the candidate
 * stores alone), ticker (issue 16: keyed quotes into one room with slow readers, per delivery policy;
 * compression off and on). Each scenario owns the processes it starts (bench/lib/scenario.mjs).
 * Options: --quick, --only <list>, --systems switchboard,socketio,floor, --out <file.json>, --budget-s N,
 * and any size below as --kebab-case (e.g. --idle-conns 19000).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { log, stopAll } from './lib/procs.mjs';
import { markdown } from './lib/report.mjs';
import { runScenario } from './lib/scenario.mjs';
import { ROOT } from './lib/systems.mjs';
import { crossNode, durable, storm, workers } from './scenarios/cluster.mjs';
import { connectRate } from './scenarios/connect.mjs';
import { embedded } from './scenarios/embedded.mjs';
import { engines } from './scenarios/engines.mjs';
import { pusher } from './scenarios/pusher.mjs';
import { services } from './scenarios/services.mjs';
import { hotRoom, idleMemory } from './scenarios/single.mjs';
import { ticker } from './scenarios/ticker.mjs';

const FULL = {
  settleMs: 5000,
  idleConns: 19000,
  idleRooms: 100,
  idleProcs: 4,
  workersConns: 100000,
  workersProcs: 6,
  // A process may hold at most 20,000 open files: 100,000 connections need at least 6 workers.
  workers: 6,
  hotMembers: 5000,
  hotProcs: 2,
  hotSeconds: 10,
  hotRate: 10,
  // The p99 at 10 msg/s rests on the slowest few messages: 30 s gives 300 of them (10 s gave 100).
  hotRateSeconds: 30,
  window: 200,
  sampleEvery: 10,
  crossMembers: 3000,
  crossSeconds: 10,
  crossRate: 60,
  crossWindow: 100,
  // The gateway refuses more than 256 requests in flight per connection (MAX_INFLIGHT): stay under it.
  durablePublishers: 8,
  durableWindow: 200,
  durableSeconds: 10,
  stormClients: 15000,
  stormProcs: 3,
  stormRate: 100,
  stormPublishAfterKillS: 3,
  stormAdmissionRate: 2000,
  stormAdmissionBurst: 4000,
  /** Webhooks on (1) during the storm, counted per reconnecting client; 0 to compare without them. */
  stormWebhooks: 1,
  /** After the kill, how long webhooks are counted: past the presence TTL (45 s) and the grace (5 s). */
  stormWebhookWaitS: 55,
  connectConns: 20000,
  connectSlice: 5000,
  connectRooms: 1000,
  servicesSeconds: 10,
  servicesWindow: 200,
  servicesRpcs: 2000,
  enginesSeconds: 8,
  enginesWindow: 2000,
  enginesRooms: 20,
  enginesBatch: 5000,
  enginesRate: 2000,
  enginesOutageS: 20,
  enginesRows: 1000000,
  enginesPages: 500,
  // Scenario `pusher` (issue 14): v1, the Pusher endpoint and Soketi 1.6 (pusherSoketi 0 leaves Soketi out).
  pusherIdleConns: 5000,
  pusherIdleChannels: 100,
  pusherIdleProcs: 2,
  pusherHotMembers: 1000,
  pusherHotProcs: 1,
  pusherHotSeconds: 10,
  pusherHotRate: 10,
  pusherHotRateSeconds: 10,
  // HTTP API publishing: keep-alive connections, one trigger in flight on each (as many as v1's `window`).
  pusherStreams: 200,
  pusherChurnUsers: 200,
  pusherChurnSeconds: 20,
  pusherChurnRate: 50,
  pusherChurnSettleS: 30,
  pusherSoketi: 1,
  // Which parts of scenario `pusher` run: idle (a), hot (b), churn (c).
  pusherParts: 'idle,hot,churn',
  // Scenario `embedded` (issue 18): the embedded node per store, then the candidate stores alone.
  embeddedStores: 'sqlite,pglite',
  embeddedCandidates: 'sqlite-worker,sqlite-main,pglite-worker,pglite-main',
  embeddedRate: 5000,
  embeddedSeconds: 20,
  embeddedRooms: 50,
  // 1,000/s per connection: a connection may have at most 256 publishes in flight (MAX_INFLIGHT).
  embeddedPublishers: 5,
  embeddedIdleMs: 5000,
  embeddedReadyTimeoutMs: 60000,
  // `all` (every core: the SQLite worker thread can use the core the event loop is not on) or a core number.
  embeddedCore: 'all',
  // Scenario `ticker` (issue 16): one room, keyed quotes, slow readers, per delivery policy; compression off / on.
  tickerMembers: 5000,
  tickerSlow: 500,
  tickerProcs: 2,
  tickerRate: 50,
  tickerKeys: 500,
  // A slow reader takes a tenth of the rate, 4 KiB at a time (bench/scenarios/ticker.mjs says why).
  tickerSlowRate: 5,
  tickerReadBuffer: 4096,
  // Publishing before the window: a slow reader fills the kernel's buffers (~4 MB on loopback) in about a minute, then
  // the node's; the window sees it fall behind, cut (ordered) or caught up (conflate, drop).
  tickerWarmupSeconds: 60,
  tickerSeconds: 60,
  tickerRuns: 'baseline,ordered,conflate,drop,deflate-off,deflate-on',
  // A build of branch i16-deflate (its dist/cli/main.js) for the compression runs; empty: this tree's.
  tickerCompressionCli: '',
  budgetS: 1750,
};
const QUICK = {
  ...FULL,
  settleMs: 1500,
  idleConns: 4000,
  idleProcs: 2,
  workersConns: 5000,
  workersProcs: 2,
  workers: 2,
  hotMembers: 1500,
  hotSeconds: 3,
  hotRateSeconds: 3,
  crossMembers: 600,
  crossSeconds: 3,
  durableSeconds: 3,
  stormClients: 1000,
  stormProcs: 1,
  connectConns: 4000,
  connectSlice: 1000,
  connectRooms: 100,
  servicesSeconds: 3,
  servicesRpcs: 300,
  enginesSeconds: 3,
  enginesOutageS: 5,
  enginesRows: 100000,
  enginesPages: 100,
  pusherIdleConns: 1000,
  pusherHotMembers: 300,
  pusherHotSeconds: 3,
  pusherHotRateSeconds: 3,
  pusherChurnUsers: 50,
  pusherChurnSeconds: 8,
  pusherChurnRate: 25,
  pusherChurnSettleS: 15,
  embeddedSeconds: 5,
  embeddedIdleMs: 2000,
  tickerMembers: 1000,
  tickerSlow: 100,
  tickerProcs: 1,
  tickerSeconds: 40,
  budgetS: 240,
};
/** The table's scenarios (the default run), then those run only when named in --only. */
const SCENARIOS = ['idle', 'workers', 'hot', 'cross', 'durable', 'storm'];
const EXTRA = ['connect', 'services', 'engines', 'pusher', 'embedded', 'ticker'];

function parseArgs(argv) {
  const quick = argv.includes('--quick');
  const o = { ...(quick ? QUICK : FULL), quick, only: SCENARIOS, systems: ['switchboard', 'socketio', 'floor'], out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') continue;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (key === 'only') {
      o.only = v.split(',');
      for (const s of o.only)
        if (![...SCENARIOS, ...EXTRA].includes(s)) throw new Error(`unknown scenario ${s} (one of ${[...SCENARIOS, ...EXTRA].join(', ')})`);
    } else if (key === 'systems') o.systems = v.split(',');
    else if (key === 'out') o.out = v;
    else if (typeof o[key] === 'number') o[key] = Number(v);
    else if (typeof o[key] === 'string') o[key] = v;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function setup(o) {
  const sh = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  };
  const pkg = (name) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return null;
    }
  };
  return {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    gitHead: sh('git', ['rev-parse', '--short', 'HEAD']),
    benchSbFlags: process.env.BENCH_SB_FLAGS || undefined,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
      openFiles: sh('sh', ['-c', 'ulimit -n']),
    },
    loadBefore: os.loadavg().map((x) => Math.round(x * 100) / 100),
    versions: {
      node: process.version,
      ws: pkg('ws'),
      'socket.io': pkg('socket.io'),
      '@socket.io/redis-adapter': pkg('@socket.io/redis-adapter'),
      ioredis: pkg('ioredis'),
      pusher: pkg('pusher'),
      'better-sqlite3': pkg('better-sqlite3'),
      '@electric-sql/pglite': pkg('@electric-sql/pglite'),
    },
    pinning: 'single-process servers on core 0 (taskset -c 0); load generators and this orchestrator on core 1; cluster scenarios: see each scenario',
    options: o,
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  if (statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtimeMs < statSync(join(ROOT, 'src', 'cli', 'main.ts')).mtimeMs)
    log('warning: dist/ may be older than src/ (run npm run build)');
  const result = { setup: setup(o), scenarios: {}, failed: [], errors: [], warnings: [] };
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  } catch {
    log('warning: could not pin the orchestrator to core 1');
  }
  const started = Date.now();
  let finished = false;
  const finish = async (code) => {
    if (finished) return;
    finished = true;
    await stopAll();
    result.elapsedS = Math.round((Date.now() - started) / 1000);
    result.setup.infra = o.infraVersions;
    result.setup.loadAfter = os.loadavg().map((x) => Math.round(x * 100) / 100);
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const stamp = result.setup.date.replace(/[:.]/g, '-').slice(0, 19) + (o.quick ? '-quick' : '');
    const file = o.out ?? join(dir, `${stamp}.json`);
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    const md = markdown(result);
    writeFileSync(file.replace(/\.json$/, '') + '.md', md);
    process.stdout.write(`${md}\n`);
    log(`wrote ${file} (${result.elapsedS} s)`);
    process.exit(code);
  };
  // `ticker` runs on top of the budget: each of its runs takes its window plus about a minute of joins and drain.
  const budgetS = o.budgetS + (o.only.includes('ticker') ? o.tickerRuns.split(',').length * (o.tickerWarmupSeconds + o.tickerSeconds + 90) : 0);
  const budget = setTimeout(() => {
    result.errors.push(`budget of ${budgetS} s exhausted; partial results`);
    void finish(3);
  }, budgetS * 1000);
  budget.unref();
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      result.errors.push(`interrupted (${sig})`);
      void finish(130);
    });
  }
  const run = (name, fn) => runScenario(result, name, fn);
  const per = async (scenario, fn) => {
    const out = {};
    for (const kind of o.systems) out[kind] = await run(`${scenario} ${kind}`, () => fn(kind));
    result.scenarios[scenario] = out;
  };
  if (o.only.includes('idle')) await per('idle', (k) => idleMemory(k, o));
  if (o.only.includes('hot')) await per('hot', (k) => hotRoom(k, o));
  if (o.only.includes('workers')) result.scenarios.workers = await run('workers', () => workers(o));
  if (o.only.includes('cross')) result.scenarios.cross = await run('cross', () => crossNode(o));
  if (o.only.includes('durable')) result.scenarios.durable = await run('durable', () => durable(o));
  if (o.only.includes('storm')) result.scenarios.storm = await run('storm', () => storm(o));
  if (o.only.includes('connect')) result.scenarios.connect = await run('connect', () => connectRate(o));
  if (o.only.includes('services')) result.scenarios.services = await run('services', () => services(o));
  if (o.only.includes('engines')) result.scenarios.engines = await run('engines', () => engines(o));
  if (o.only.includes('pusher')) result.scenarios.pusher = await run('pusher', () => pusher(o));
  if (o.only.includes('embedded')) result.scenarios.embedded = await run('embedded', () => embedded(o));
  if (o.only.includes('ticker')) result.scenarios.ticker = await run('ticker', () => ticker(o));
  await finish(result.errors.length > 0 ? 1 : 0);
}

main().catch(async (err) => {
  log(err?.stack ?? String(err));
  await stopAll();
  process.exit(2);
});
