/**
 * Throwaway real servers for tests: nats-server (optionally with JetStream, optionally clustered) and
 * redis-server, each on free loopback ports in its own temp directory. They can be stopped, killed and
 * restarted on the same port to inject faults. Never the machine's shared instances.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

export interface TestServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** SIGTERM (PostgreSQL: SIGINT, its fast shutdown that disconnects clients) and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Start again on the same port and directory (after stop/kill). */
  restart(): Promise<void>;
  /** Stop and delete the directory. */
  dispose(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server did not listen on ${port} in ${timeoutMs} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function managed(
  name: string,
  port: number,
  url: string,
  dir: string,
  spawnIt: () => ChildProcess,
  stopSignal: NodeJS.Signals = 'SIGTERM',
  ready?: () => Promise<boolean>,
): TestServer {
  let child: ChildProcess | null = null;
  let output = '';
  const start = async (): Promise<void> => {
    output = '';
    child = spawnIt();
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitForPort(port, 15_000, child, () => `${name}: ${output.slice(-2000)}`);
    const deadline = Date.now() + 15_000;
    while (ready !== undefined && !(await ready())) {
      if (Date.now() > deadline) throw new Error(`${name} listens on ${port} but is not ready: ${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === null || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    await exited;
  };
  const server: TestServer = {
    port,
    url,
    dir,
    stop: () => halt(stopSignal),
    kill: () => halt('SIGKILL'),
    restart: start,
    async dispose() {
      await halt('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return Object.assign(server, { start });
}

export interface NatsOptions {
  jetstream?: boolean;
  /** Routes to other servers of a cluster (their cluster ports) and this server's cluster port. */
  cluster?: { name: string; port: number; routes: number[] };
  serverName?: string;
}

export async function startNatsServer(options: NatsOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
  const lines = [`listen: 127.0.0.1:${port}`, `server_name: ${options.serverName ?? `n${port}`}`];
  if (options.jetstream) lines.push(`jetstream { store_dir: "${join(dir, 'js')}" }`);
  if (options.cluster) {
    lines.push(
      `cluster { name: ${options.cluster.name}, listen: 127.0.0.1:${options.cluster.port}, routes: [${options.cluster.routes
        .map((p) => `"nats://127.0.0.1:${p}"`)
        .join(', ')}] }`,
    );
  }
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  const s = managed('nats-server', port, `nats://127.0.0.1:${port}`, dir, () => spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await (s as TestServer & { start(): Promise<void> }).start();
  return s;
}

export async function startRedisServer(options: { password?: string } = {}): Promise<TestServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
  if (options.password !== undefined) args.push('--requirepass', options.password);
  const auth = options.password !== undefined ? `:${options.password}@` : '';
  const s = managed('redis-server', port, `redis://${auth}127.0.0.1:${port}`, dir, () => spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  await (s as TestServer & { start(): Promise<void> }).start();
  return s;
}

const PG_BIN = '/usr/lib/postgresql';

function pgBinary(name: string): string {
  // Debian installs versioned binaries; pick the newest.
  const versions = readdirSync(PG_BIN).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('postgresql is not installed (no /usr/lib/postgresql/<version>)');
  return join(PG_BIN, versions[0]!, 'bin', name);
}

/**
 * A throwaway PostgreSQL: initdb into a temp dir (as the `postgres` user when running as root, since
 * initdb refuses root), trust auth, fsync off, listening on a free loopback port. The URL names
 * database `postgres`.
 */
export async function startPostgres(): Promise<TestServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-pg-'));
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) } : {};
  if (asRoot) chownSync(dir, ids.uid!, ids.gid!);
  const data = join(dir, 'data');
  execFileSync(pgBinary('initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], { ...ids, stdio: 'pipe' });
  const args = ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off'];
  const s = managed('postgres', port, `postgres://postgres@127.0.0.1:${port}/postgres`, dir, () =>
    spawn(pgBinary('postgres'), args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] }),
    // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client session to end by itself.
    'SIGINT',
    // The port listens before the server accepts sessions ("the database system is starting up").
    async () => {
      try {
        execFileSync(pgBinary('pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    },
  );
  await (s as TestServer & { start(): Promise<void> }).start();
  return s;
}
