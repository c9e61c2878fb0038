/**
 * Process plumbing for the benchmark: starting children pinned to a core (or truly unpinned), waiting for a
 * server's `{"msg":"listening","port":N}` line, stopping by pid, /proc CPU and RSS readings, free ports, and
 * process ownership: every child is registered, as it is spawned, with the owner current at that point
 * (`owned`), which stops all of them when its work ends, however it ends.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);

// Kept importable from here for scripts written against the earlier layout (the launcher is infra.mjs).
export { startInfra } from './infra.mjs';

const started = new Set();
const tmpDirs = new Set();
const ALL_CORES = `0-${os.cpus().length - 1}`;

/** The children one piece of work (a scenario, a variant of one) started; see `owned`. */
export class Owner {
  constructor(name) {
    this.name = name;
    this.children = new Set();
    this.closed = false;
  }

  /** Pids of its children still running. */
  livePids() {
    return [...this.children].filter(alive).map((c) => c.pid);
  }

  /** Stops every child still running; returns `{ name, pid }` of each one it had to stop. */
  async stopAll(ms = 3000) {
    this.closed = true;
    const live = [...this.children].filter(alive);
    await Promise.all(live.map((c) => stop(c, 'SIGTERM', ms)));
    return live.map((c) => ({ name: c.name, pid: c.pid }));
  }
}

const current = new AsyncLocalStorage();
/** The owner of whatever is spawned now (undefined outside `owned`: the run's own, stopped by stopAll). */
export const currentOwner = () => current.getStore();

/**
 * Runs `fn` as owner `name`: every process spawned while it runs (at any depth of calls) is stopped when it
 * settles, even when it throws before handing its children back. Never throws: resolves
 * `{ ok, value, error, stopped }`, `stopped` listing the children that were still running at the end.
 */
export async function owned(name, fn) {
  const owner = new Owner(name);
  let value = null;
  let error = null;
  try {
    value = await current.run(owner, fn);
  } catch (err) {
    error = err;
  }
  const stopped = await owner.stopAll();
  return { ok: error === null, value, error, stopped };
}

/** Runs `fn` outside any owner: for run-wide infrastructure that outlives one scenario (stopped by stopAll). */
export const unowned = (fn) => current.exit(fn);

export function tmpDir(prefix) {
  const d = mkdtempSync(join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

/**
 * Spawns `cmd args` under `taskset -c core`, or on every core when core is undefined (a child would
 * otherwise inherit the orchestrator's own pinning to core 1). Output is kept (last 20 kB) for errors. The
 * child is registered with the current owner before anything can fail.
 */
export function start(name, cmd, args, { core, ipc = false, env, uid, gid, stdin = 'ignore' } = {}) {
  const owner = currentOwner();
  if (owner?.closed) throw new Error(`${owner.name} has finished: refusing to start ${name}`);
  const child = spawn('taskset', ['-c', core === undefined ? ALL_CORES : String(core), cmd, ...args], {
    stdio: [stdin, 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])],
    env: { ...process.env, ...env },
    uid,
    gid,
  });
  child.name = name;
  child.out = '';
  const keep = (d) => (child.out = (child.out + d).slice(-20000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => (child.out += `\nspawn error: ${err.message}`));
  owner?.children.add(child);
  started.add(child);
  child.on('exit', () => started.delete(child));
  return child;
}

export const alive = (c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null;

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
  const all = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
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
