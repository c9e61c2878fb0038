/**
 * Process plumbing for the benchmark: starting children pinned to a core, waiting for a server's
 * `{"msg":"listening","port":N}` line, stopping by pid, /proc CPU and RSS readings, free ports, and the
 * throwaway nats-server / redis-server / PostgreSQL the cluster scenarios need (same approach as
 * test/helpers/servers.ts: free ports, temp dirs, initdb as the postgres user when root).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);

const started = new Set();
const tmpDirs = new Set();

export function tmpDir(prefix) {
  const d = mkdtempSync(join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

/** Spawns `cmd args` (under `taskset -c core` when core is given), output kept (last 20 kB) for errors. */
export function start(name, cmd, args, { core, ipc = false, env, uid, gid } = {}) {
  const [c0, a0] = core === undefined ? [cmd, args] : ['taskset', ['-c', String(core), cmd, ...args]];
  const child = spawn(c0, a0, { stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])], env: { ...process.env, ...env }, uid, gid });
  child.name = name;
  child.out = '';
  const keep = (d) => (child.out = (child.out + d).slice(-20000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
}

export const alive = (c) => c.exitCode === null && c.signalCode === null;

export async function stop(c, signal = 'SIGTERM', ms = 10000) {
  if (!alive(c)) return;
  const exited = new Promise((r) => c.once('exit', r));
  try {
    process.kill(c.pid, signal);
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, ms);
  await exited;
  clearTimeout(t);
}

/** Stops every child this process started (by pid) and deletes the temp dirs. */
export async function stopAll() {
  await Promise.all([...started].map((c) => stop(c, 'SIGTERM', 3000)));
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
}

/** Waits for a JSON log line with msg "listening" and returns its port. */
export function listening(child, ms = 90000) {
  return new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`${child.name} did not listen within ${ms} ms: ${child.out.slice(-1500)}`)), ms);
    const onData = (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.includes('listening')) continue;
        try {
          const j = JSON.parse(line);
          if (j.msg === 'listening' && typeof j.port === 'number') {
            clearTimeout(timer);
            child.stdout.off('data', onData);
            res(j.port);
            return;
          }
        } catch {
          /* not JSON */
        }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`${child.name} exited (${code}) before listening: ${child.out.slice(-1500)}`));
    });
  });
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

export async function waitPort(port, child, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!alive(child)) throw new Error(`${child.name} exited: ${child.out.slice(-1500)}`);
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${child.name} did not listen on ${port}`);
    await sleep(100);
  }
}

function statOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpuS: (Number(f[11]) + Number(f[12])) / 100, rss: Number(f[21]) * 4096 };
  } catch {
    return null;
  }
}

/** A pid and (with `tree`) its descendants. */
export function pidTree(pid) {
  const out = [pid];
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  const parents = new Map(all.map((p) => [p, statOf(p)?.ppid]));
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parents) if (pp === out[i] && !out.includes(p)) out.push(p);
  return out;
}

/** utime+stime (s) and RSS (bytes) summed over pids. */
export function procUsage(pids) {
  let cpuS = 0;
  let rss = 0;
  for (const p of pids) {
    const s = statOf(p);
    if (s !== null) {
      cpuS += s.cpuS;
      rss += s.rss;
    }
  }
  return { cpuS, rss };
}

/**
 * A throwaway PostgreSQL cluster: initdb into `dir/data` (as the postgres user when running as root, since
 * initdb refuses root) and the command that runs it on `port`, loopback only, fsync off. Start (and
 * restart) it with `{ cmd, args, opts }`; `version` is the major version used (the newest installed).
 */
export function preparePostgres(dir, port, extraArgs = []) {
  const asRoot = process.getuid?.() === 0;
  const opts = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : {};
  if (asRoot) chownSync(dir, opts.uid, opts.gid);
  const version = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => b - a)[0];
  const bin = (n) => join('/usr/lib/postgresql', version, 'bin', n);
  execFileSync(bin('initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], { ...opts, stdio: 'pipe' });
  const args = ['-D', join(dir, 'data'), '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off', ...extraArgs];
  return { cmd: bin('postgres'), args, opts, version };
}

/** Throwaway nats-server (JetStream on), redis-server and PostgreSQL on free ports. */
export async function startInfra() {
  const natsPort = await freePort();
  const jsDir = tmpDir('sb-bench-js-');
  const nats = start('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', jsDir]);
  const redisPort = await freePort();
  const redisDir = tmpDir('sb-bench-redis-');
  const redis = start('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir]);
  const pgPort = await freePort();
  const pgSetup = preparePostgres(tmpDir('sb-bench-pg-'), pgPort, ['-c', 'max_connections=300']);
  const pg = start('postgres', pgSetup.cmd, pgSetup.args, pgSetup.opts);
  await Promise.all([waitPort(natsPort, nats), waitPort(redisPort, redis), waitPort(pgPort, pg)]);
  const versions = {
    nats: execFileSync('nats-server', ['--version']).toString().trim(),
    redis: execFileSync('redis-server', ['--version']).toString().trim().split(' ').slice(0, 3).join(' '),
    postgres: `PostgreSQL ${pgSetup.version} (fsync=off, full_page_writes=off, synchronous_commit=off)`,
  };
  return {
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    dbUrl: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
    procs: { nats, redis, pg },
    versions,
    async flushRedis() {
      execFileSync('redis-cli', ['-p', String(redisPort), 'FLUSHALL'], { stdio: 'ignore' });
    },
    async stop() {
      await Promise.all([stop(nats), stop(redis), stop(pg)]);
    },
  };
}
