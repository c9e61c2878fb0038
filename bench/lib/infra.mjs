/**
 * Throwaway servers for the figure scripts: nats-server (optionally with JetStream), redis-server and
 * PostgreSQL (fsync off) on free loopback ports, plus child-process helpers. Every child is recorded in
 * `started` so a script stops exactly what it started, by pid.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';

import { freePort, preparePostgres } from './procs.mjs';

export { freePort };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitPort(port, child, name, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${child.out?.slice(-1500)}`);
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${name} did not listen on ${port}: ${child.out?.slice(-1500)}`);
    await sleep(100);
  }
}

/** Every child process started through `start`, to stop by pid. */
export const started = [];

export function start(name, cmd, argv, opts = {}) {
  const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  c.out = '';
  c.stdout.on('data', (d) => (c.out = (c.out + d).slice(-20000)));
  c.stderr.on('data', (d) => (c.out = (c.out + d).slice(-20000)));
  c.name = name;
  started.push(c);
  return c;
}

export async function stop(c, signal = 'SIGTERM', ms = 10_000) {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  try {
    process.kill(c.pid, signal);
  } catch {}
  const t = setTimeout(() => {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {}
  }, ms);
  await exited;
  clearTimeout(t);
}

/**
 * Starts nats-server, redis-server and PostgreSQL; temp directories are pushed onto `tmp` for the caller
 * to delete. Resolves with the children, URLs and a description of PostgreSQL's settings.
 */
export async function startInfra({ tmp, jetstream = false }) {
  const natsPort = await freePort();
  const natsArgs = ['-a', '127.0.0.1', '-p', String(natsPort)];
  if (jetstream) {
    const jsDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-js-'));
    tmp.push(jsDir);
    natsArgs.push('-js', '-sd', jsDir);
  }
  const nats = start('nats-server', 'nats-server', natsArgs);
  const redisPort = await freePort();
  const redisDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-redis-'));
  tmp.push(redisDir);
  const redis = start('redis-server', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir]);
  const pgPort = await freePort();
  const pgDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-pg-'));
  tmp.push(pgDir);
  const pgSetup = preparePostgres(pgDir, pgPort);
  const pg = start('postgres', pgSetup.cmd, pgSetup.args, pgSetup.opts);
  await Promise.all([waitPort(natsPort, nats, 'nats-server'), waitPort(redisPort, redis, 'redis-server'), waitPort(pgPort, pg, 'postgres')]);
  return {
    nats, redis, pg, natsPort, redisPort, pgPort,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    redisUrl: `redis://127.0.0.1:${redisPort}`,
    dbUrl: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
    postgres: `PostgreSQL ${pgSetup.version}, fsync=off, full_page_writes=off, synchronous_commit=off`,
  };
}

export const uptime = () => execFileSync('uptime').toString().trim();

/**
 * The end of a figure script, run once: stops every started child (newest first), deletes `tmp`, records
 * the load after, prints the result JSON (and writes it to `out`), exits 1 when aborted.
 */
export function finisher(result, tmp, out) {
  let finished = false;
  return async (aborted) => {
    if (finished) return;
    finished = true;
    for (const c of [...started].reverse()) await stop(c, 'SIGTERM', 5000).catch(() => {});
    for (const d of tmp) rmSync(d, { recursive: true, force: true });
    result.setup.loadAfter = uptime();
    result.aborted = aborted;
    const text = JSON.stringify(result, null, 2);
    if (out) writeFileSync(out, text);
    process.stdout.write(text + '\n');
    process.exit(aborted ? 1 : 0);
  };
}
