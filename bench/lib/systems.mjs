/**
 * The three systems under test, started the same way: one Node process per server (or per worker) under
 * `node --expose-gc --import bench/lib/gc-hook.mjs`, pinned to core 0 unless told otherwise, printing a
 * `{"msg":"listening","port":N}` line.
 *
 * - `switchboard`: `dist/cli/main.js start --dev` (embedded engines with a copied, already-initialised data
 *   dir; or cluster mode with `cluster: {natsUrl, redisUrl, dbUrl, backplane}`).
 * - `floor`: bench/peers/ws-floor-server.mjs (raw `ws`, encode once, one write per member per tick).
 * - `socketio`: bench/peers/socketio-server.mjs (Socket.IO 4, websocket transport; Redis adapter in cluster).
 */
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listening, log, pidTree, sleep, start, stop, tmpDir } from './procs.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const GC_HOOK = join(HERE, 'gc-hook.mjs');
/** Where gc-hook.mjs writes each server's memory reading (any system started with the hook and BENCH_MEM_DIR). */
export const memDir = tmpDir('sb-bench-mem-');

export const PROTO = { switchboard: 'sb', floor: 'sb', socketio: 'sio' };

let template = null;
/** An initialised embedded data dir (the store created and migrated), copied for each embedded node. */
async function embeddedTemplate() {
  if (template !== null) return template;
  const dir = tmpDir('sb-bench-template-');
  const child = start('switchboard (template)', process.execPath, [
    CLI,
    'start',
    '--dev',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--data-dir',
    dir,
    '--log-level',
    'info',
  ]);
  await listening(child);
  await stop(child);
  rmSync(join(dir, 'history.lock'), { force: true });
  template = dir;
  return dir;
}

/**
 * Starts one server. `port` 0 picks a free one. `core` undefined leaves it unpinned. `extra` adds CLI
 * flags (Switchboard); `cli` runs another build's dist/cli/main.js (Switchboard). Returns { kind, proto, port, child, pids(), stop(), kill() }.
 */
export async function startSystem(kind, { port = 0, core = 0, cluster, extra = [], name = kind, dataDir, cli = CLI } = {}) {
  const node = [
    '--expose-gc',
    '--import',
    GC_HOOK,
    ...(process.env.BENCH_HEAPSNAP ? ['--heapsnapshot-signal=SIGUSR1', `--diagnostic-dir=${process.env.BENCH_HEAPSNAP}`] : []),
  ];
  // BENCH_CPUPROF=<dir>: each server writes a V8 CPU profile there when it exits (for `--only <scenario>` runs).
  if (process.env.BENCH_CPUPROF) node.push('--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPUPROF}`);
  let args;
  if (kind === 'switchboard') {
    args = [...node, cli, 'start', '--dev', '--port', String(port), '--host', '127.0.0.1', '--log-level', 'info'];
    if (cluster !== undefined) {
      args.push('--nats', cluster.natsUrl, '--redis', cluster.redisUrl, '--database', cluster.dbUrl);
      if (cluster.backplane === 'redis') args.push('--backplane', 'redis');
      if (cluster.nodeId !== undefined) args.push('--node-id', cluster.nodeId);
    }
    if (dataDir === undefined) {
      dataDir = tmpDir('sb-bench-data-');
      if (cluster === undefined) cpSync(await embeddedTemplate(), dataDir, { recursive: true });
    }
    // BENCH_SB_FLAGS="--flag value …": extra Switchboard flags for an experiment (recorded in the result's setup).
    args.push('--data-dir', dataDir, ...extra, ...(process.env.BENCH_SB_FLAGS ?? '').split(' ').filter(Boolean));
  } else if (kind === 'floor') {
    args = [...node, join(ROOT, 'bench', 'peers', 'ws-floor-server.mjs'), String(port)];
  } else if (kind === 'socketio') {
    args = [...node, join(ROOT, 'bench', 'peers', 'socketio-server.mjs'), String(port), ...(cluster !== undefined ? [cluster.redisUrl] : [])];
  } else throw new Error(`unknown system ${kind}`);
  const child = start(name, process.execPath, args, { core, env: { BENCH_MEM_DIR: memDir } });
  const p = await listening(child);
  return {
    kind,
    proto: PROTO[kind],
    port: p,
    child,
    dataDir,
    pids: () => pidTree(child.pid),
    stop: () => stop(child),
    kill: () => stop(child, 'SIGKILL'),
  };
}

/** Forces a full GC in every pid (SIGUSR2 → gc-hook) and returns summed { rss, heapUsed } after it. */
export async function memAfterGc(pids) {
  const at = Date.now();
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  let rss = 0;
  let heapUsed = 0;
  for (const pid of pids) {
    const f = join(memDir, `${pid}.json`);
    const deadline = Date.now() + 30000;
    for (;;) {
      if (existsSync(f)) {
        const j = JSON.parse(readFileSync(f, 'utf8'));
        if (j.at >= at) {
          rss += j.rss;
          heapUsed += j.heapUsed;
          break;
        }
      }
      if (Date.now() > deadline) throw new Error(`no memory reading from pid ${pid}`);
      await sleep(50);
    }
  }
  return { rss, heapUsed };
}

export { log };
