/**
 * Soketi 1.6, the Pusher-compatible peer of the `pusher` scenario: installed by the bench into a folder of its
 * own (bench/.peers/soketi, gitignored), never into the project's dependencies, and started like the other
 * systems (`node --expose-gc --import gc-hook.mjs`, pinned to core 0).
 *
 * `@soketi/soketi` 1.6.1 depends on `uWebSockets.js` from a git URL (v20.10.0) that this machine cannot reach,
 * and v20.10.0 ships no build for Node 20's ABI (115). The folder's package.json satisfies it with an npm alias
 * (also as an `overrides` entry, so the nested dependency resolves to it): `@trufflesuite/uws-js-unofficial`
 * 20.30.0-unofficial.0, a published build of uWebSockets.js v20.30.0 with binaries for ABIs 93, 108 and 115.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, log, pidTree, start, stop, waitPort } from './procs.mjs';
import { memDir, ROOT } from './systems.mjs';

export const SOKETI_DIR = join(ROOT, 'bench', '.peers', 'soketi');
const UWS = 'npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0';
const MANIFEST = {
  name: 'switchboard-bench-soketi',
  private: true,
  description: 'Soketi for the bench (bench/lib/soketi.mjs); not a dependency of Switchboard',
  dependencies: { '@soketi/soketi': '1.6.1', 'uWebSockets.js': UWS },
  overrides: { 'uWebSockets.js': UWS },
};
const BIN = join(SOKETI_DIR, 'node_modules', '@soketi', 'soketi', 'bin', 'server.js');
const GC_HOOK = join(ROOT, 'bench', 'lib', 'gc-hook.mjs');

/** Installs Soketi into SOKETI_DIR when missing or when the manifest changed; returns { version, uws }. */
export function ensureSoketi() {
  mkdirSync(SOKETI_DIR, { recursive: true });
  const manifestFile = join(SOKETI_DIR, 'package.json');
  const text = `${JSON.stringify(MANIFEST, null, 2)}\n`;
  const current = existsSync(manifestFile) ? readFileSync(manifestFile, 'utf8') : null;
  if (current !== text || !existsSync(BIN)) {
    writeFileSync(manifestFile, text);
    log(`installing Soketi into ${SOKETI_DIR} (npm install, its own folder)`);
    // Scripts off: Soketi needs none (aws-sdk's only prints a notice); optional native add-ons are not needed.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--omit=optional', '--ignore-scripts', '--no-workspaces'], {
      cwd: SOKETI_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300000,
    });
  }
  const version = (p) => JSON.parse(readFileSync(join(SOKETI_DIR, 'node_modules', p, 'package.json'), 'utf8')).version;
  return { version: version('@soketi/soketi'), uws: `uWebSockets.js → @trufflesuite/uws-js-unofficial ${version('uWebSockets.js')}` };
}

/**
 * Starts one Soketi server for `app` ({ id, key, secret }) on a free port. `redis` ({ host, port, prefix })
 * selects the Redis adapter (several nodes); `core` undefined leaves it on every core. Returns the same shape
 * as startSystem: { kind, proto, port, child, pids(), stop(), kill() }.
 */
export async function startSoketi(app, { core = 0, redis, name = 'soketi', maxPresenceMembers = 1000 } = {}) {
  const port = await freePort();
  const env = {
    SOKETI_HOST: '127.0.0.1',
    SOKETI_PORT: String(port),
    SOKETI_DEFAULT_APP_ID: app.id,
    SOKETI_DEFAULT_APP_KEY: app.key,
    SOKETI_DEFAULT_APP_SECRET: app.secret,
    SOKETI_METRICS_HOST: '127.0.0.1',
    SOKETI_METRICS_SERVER_PORT: String(await freePort()),
    // node-discover's UDP port: one per node, so parallel runs and nodes never share it (Redis does the clustering).
    SOKETI_CLUSTER_PORT: String(await freePort()),
    SOKETI_PRESENCE_MAX_MEMBERS: String(maxPresenceMembers),
    SOKETI_SHUTDOWN_GRACE_PERIOD: '500',
    BENCH_MEM_DIR: memDir,
    ...(redis !== undefined
      ? {
          SOKETI_ADAPTER_DRIVER: 'redis',
          SOKETI_ADAPTER_REDIS_PREFIX: redis.prefix,
          SOKETI_DB_REDIS_HOST: redis.host,
          SOKETI_DB_REDIS_PORT: String(redis.port),
          SOKETI_DB_REDIS_KEY_PREFIX: `${redis.prefix}:`,
        }
      : {}),
  };
  const child = start(name, process.execPath, ['--expose-gc', '--import', GC_HOOK, BIN, 'start'], { core, env });
  await waitPort(port, child, 60000);
  // The port answers before Soketi prints that it is up: wait for the line too.
  const deadline = Date.now() + 30000;
  while (!child.out.includes('Server is up and running') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return {
    kind: 'soketi',
    proto: 'pusher',
    port,
    child,
    pids: () => pidTree(child.pid),
    stop: () => stop(child),
    kill: () => stop(child, 'SIGKILL'),
  };
}

/** Whether `npm` can be run here (the install needs it). */
export function npmAvailable() {
  try {
    execFileSync('npm', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
