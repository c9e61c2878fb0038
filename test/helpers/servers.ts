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
  /** SIGSTOP: the process keeps its sockets but answers nothing (a server that lags or hangs) until `resume`. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
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

export function managed(
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
    pause: () => void (child as ChildProcess | null)?.kill('SIGSTOP'),
    resume: () => void (child as ChildProcess | null)?.kill('SIGCONT'),
    restart: start,
    async dispose() {
      await halt('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return Object.assign(server, { start });
}

export interface NatsOptions {
  /** Client port (default: a free one). */
  port?: number;
  jetstream?: boolean;
  /** Routes to other servers of a cluster (their cluster ports) and this server's cluster port. */
  cluster?: { name: string; port: number; routes: number[] };
  /** Unique per server of a cluster (JetStream clustering refuses duplicates); default `n<port>`. */
  serverName?: string;
  /** Serve the monitoring endpoints (/varz, /jsz, /healthz, /gatewayz) on this port. */
  monitorPort?: number;
  /**
   * Join a supercluster: this server's gateway (named after its cluster) listens on `port`, tells the other
   * clusters to reach it at `advertisePort` (a proxy standing for the link, test/helpers/tcp-proxy.ts) when
   * given, and connects to each of `gateways` on its port.
   */
  gateway?: { name: string; port: number; advertisePort?: number; gateways: { name: string; port: number }[] };
}

export interface NatsServer extends TestServer {
  readonly serverName: string;
  /** `http://127.0.0.1:<monitorPort>` when `monitorPort` was given. */
  readonly monitorUrl?: string;
}

/**
 * A nats-server. With `jetstream` and `cluster` together it is a JetStream cluster member (nats-server
 * 2.9 needs a unique `server_name`, a `jetstream { store_dir }` and the `cluster` block); `restart()`
 * brings it back with the same ports, name and store dir, so it rejoins as the same peer.
 */
export async function startNatsServer(options: NatsOptions = {}): Promise<NatsServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
  const serverName = options.serverName ?? `n${port}`;
  const lines = [`listen: 127.0.0.1:${port}`, `server_name: ${serverName}`];
  if (options.monitorPort !== undefined) lines.push(`http: 127.0.0.1:${options.monitorPort}`);
  if (options.jetstream) lines.push(`jetstream { store_dir: "${join(dir, 'js')}" }`);
  if (options.cluster) {
    lines.push(
      `cluster { name: ${options.cluster.name}, listen: 127.0.0.1:${options.cluster.port}, routes: [${options.cluster.routes
        .map((p) => `"nats://127.0.0.1:${p}"`)
        .join(', ')}] }`,
    );
  }
  if (options.gateway) {
    const g = options.gateway;
    lines.push(
      `gateway { name: ${g.name}, listen: 127.0.0.1:${g.port}${g.advertisePort !== undefined ? `, advertise: "127.0.0.1:${g.advertisePort}"` : ''}, gateways: [${g.gateways
        .map((o) => `{ name: ${o.name}, url: "nats://127.0.0.1:${o.port}" }`)
        .join(', ')}] }`,
    );
  }
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  const s = managed('nats-server', port, `nats://127.0.0.1:${port}`, dir, () => spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await (s as TestServer & { start(): Promise<void> }).start();
  return Object.assign(s, { serverName, ...(options.monitorPort !== undefined ? { monitorUrl: `http://127.0.0.1:${options.monitorPort}` } : {}) });
}

interface JszMeta {
  meta_cluster?: { leader?: string; cluster_size?: number; replicas?: { name: string; current: boolean; offline?: boolean }[] };
}

async function jsz(server: NatsServer): Promise<JszMeta | null> {
  try {
    const res = await fetch(`${server.monitorUrl!}/jsz`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as JszMeta) : null;
  } catch {
    return null;
  }
}

/**
 * Waits (at most `timeoutMs`) until the JetStream meta group of `servers` has a leader that every one of
 * them names, and the leader sees all the others as current peers, so an R<n> stream can be placed.
 * Throws with what each server last reported.
 */
export async function waitForJetStreamMeta(servers: NatsServer[], timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let seen: (JszMeta | null)[] = [];
  for (;;) {
    seen = await Promise.all(servers.map(jsz));
    const leaders = new Set(seen.map((j) => j?.meta_cluster?.leader ?? ''));
    const leader = [...leaders][0] ?? '';
    if (leaders.size === 1 && leader !== '') {
      const atLeader = seen[servers.findIndex((s) => s.serverName === leader)];
      const peers = atLeader?.meta_cluster?.replicas ?? [];
      if (peers.length === servers.length - 1 && peers.every((p) => p.current && p.offline !== true)) return leader;
    }
    if (Date.now() > deadline) {
      const report = servers.map((s, i) => `${s.serverName}: ${JSON.stringify(seen[i]?.meta_cluster ?? null)}`).join('; ');
      throw new Error(`JetStream cluster has no meta leader with all ${servers.length} peers current after ${timeoutMs} ms: ${report}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A JetStream cluster of `size` nats-servers (default 3) on free ports, each with its own store dir and
 * monitoring port, routed to each other; resolves once the meta group has a leader and every peer is
 * current (waitForJetStreamMeta).
 */
export async function startJetStreamCluster(size = 3, name = 'sbjs', timeoutMs = 30_000): Promise<NatsServer[]> {
  // Every port picked before any server binds: distinct, or a server would find its port taken by another.
  const ports = new Set<number>();
  while (ports.size < 3 * size) ports.add(await freePort());
  const [clientPorts, clusterPorts, monitorPorts] = [0, 1, 2].map((k) => [...ports].slice(k * size, (k + 1) * size));
  const started = await Promise.allSettled(
    clusterPorts!.map((port, i) =>
      startNatsServer({
        port: clientPorts![i]!,
        jetstream: true,
        serverName: `${name}-${i}`,
        monitorPort: monitorPorts![i]!,
        cluster: { name, port, routes: clusterPorts!.filter((p) => p !== port) },
      }),
    ),
  );
  const servers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    await waitForJetStreamMeta(servers, timeoutMs);
  } catch (err) {
    await Promise.all(servers.map((s) => s.dispose()));
    throw err;
  }
  return servers;
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
  const versions = readdirSync(PG_BIN)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
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
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) }
    : {};
  if (asRoot) chownSync(dir, ids.uid!, ids.gid!);
  const data = join(dir, 'data');
  execFileSync(pgBinary('initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], { ...ids, stdio: 'pipe' });
  const args = [
    '-D',
    data,
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
  ];
  const s = managed(
    'postgres',
    port,
    `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    () => spawn(pgBinary('postgres'), args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] }),
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
