/**
 * The throwaway infrastructure of the cluster scenarios: nats-server (JetStream on), redis-server and
 * PostgreSQL (fsync off) on free loopback ports, in temp dirs deleted at the end of the run (same approach
 * as test/helpers/servers.ts; initdb runs as the postgres user when run as root).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, start, stop, tmpDir, waitPort } from './procs.mjs';

/**
 * A throwaway PostgreSQL cluster: initdb into `dir/data` (as the postgres user when running as root, since
 * initdb refuses root) and the command that runs it on `port`, loopback only, fsync off. Start (and
 * restart) it with `{ cmd, args, opts }`; `version` is the major version used (the newest installed).
 */
export function preparePostgres(dir, port, extraArgs = []) {
  const asRoot = process.getuid?.() === 0;
  const opts = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : {};
  if (asRoot) chownSync(dir, opts.uid, opts.gid);
  const version = readdirSync('/usr/lib/postgresql')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => b - a)[0];
  const bin = (n) => join('/usr/lib/postgresql', version, 'bin', n);
  execFileSync(bin('initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], { ...opts, stdio: 'pipe' });
  const args = [
    '-D',
    join(dir, 'data'),
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'synchronous_commit=off',
    ...extraArgs,
  ];
  return { cmd: bin('postgres'), args, opts, version };
}

/** Throwaway nats-server (JetStream on), redis-server and PostgreSQL on free ports; all stopped if one fails. */
export async function startInfra() {
  const natsPort = await freePort();
  const redisPort = await freePort();
  const pgPort = await freePort();
  const procs = {};
  try {
    procs.nats = start('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', tmpDir('sb-bench-js-')]);
    procs.redis = start('redis-server', 'redis-server', [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      tmpDir('sb-bench-redis-'),
    ]);
    const pgSetup = preparePostgres(tmpDir('sb-bench-pg-'), pgPort, ['-c', 'max_connections=300']);
    procs.pg = start('postgres', pgSetup.cmd, pgSetup.args, pgSetup.opts);
    await Promise.all([waitPort(natsPort, procs.nats), waitPort(redisPort, procs.redis), waitPort(pgPort, procs.pg)]);
    const versions = {
      nats: execFileSync('nats-server', ['--version']).toString().trim(),
      redis: execFileSync('redis-server', ['--version']).toString().trim().split(' ').slice(0, 3).join(' '),
      postgres: `PostgreSQL ${pgSetup.version} (fsync=off, full_page_writes=off, synchronous_commit=off)`,
    };
    return {
      natsUrl: `nats://127.0.0.1:${natsPort}`,
      redisUrl: `redis://127.0.0.1:${redisPort}`,
      dbUrl: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      pgPort,
      pgSetup,
      procs,
      versions,
      async flushRedis() {
        execFileSync('redis-cli', ['-p', String(redisPort), 'FLUSHALL'], { stdio: 'ignore' });
      },
      async stop() {
        await Promise.all(Object.values(procs).map((c) => stop(c)));
      },
    };
  } catch (err) {
    await Promise.all(Object.values(procs).map((c) => stop(c, 'SIGKILL')));
    throw err;
  }
}
