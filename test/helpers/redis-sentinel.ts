/**
 * A throwaway Redis Sentinel deployment on loopback free ports: a master, replicas and sentinels, all real
 * redis-server processes (sentinels as `redis-server <conf> --sentinel`, what Debian's redis-sentinel runs),
 * each in its own temp directory, with a password on the data servers. Resolves once the master has every
 * replica online and every sentinel knows the replicas and the other sentinels, so a failover can happen.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { managed, type TestServer } from './servers.js';

export const SENTINEL_MASTER = 'sb';

export interface SentinelSet {
  master: TestServer;
  replicas: TestServer[];
  sentinels: TestServer[];
  password: string;
  /** `redis+sentinel://:password@127.0.0.1:p1,127.0.0.1:p2,…/sb`, the address the node is given. */
  url: string;
  /** The port of the master the sentinels name now. */
  masterPort(): Promise<number>;
  /** A direct client to the data server on `port` (the caller disconnects it). */
  client(port: number): Redis;
  dispose(): Promise<void>;
}

type Startable = TestServer & { start(): Promise<void> };

function dataServer(port: number, password: string, replicaOf?: number): Startable {
  const dir = mkdtempSync(join(tmpdir(), 'sb-redis-s-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
  args.push('--requirepass', password, '--masterauth', password);
  if (replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(replicaOf));
  return managed('redis-server', port, `redis://:${password}@127.0.0.1:${port}`, dir, () =>
    spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as Startable;
}

function sentinel(port: number, masterPort: number, password: string, downAfterMs: number): Startable {
  const dir = mkdtempSync(join(tmpdir(), 'sb-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  // Sentinel rewrites its config file (the replicas and sentinels it learns), so it gets its own.
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
      `sentinel auth-pass ${SENTINEL_MASTER} ${password}`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} ${downAfterMs}`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
      `sentinel parallel-syncs ${SENTINEL_MASTER} 2`,
      '',
    ].join('\n'),
  );
  return managed('redis-sentinel', port, `redis://127.0.0.1:${port}`, dir, () =>
    spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as Startable;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`redis sentinel set: ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSentinelSet(options: { replicas?: number; sentinels?: number; downAfterMs?: number } = {}): Promise<SentinelSet> {
  const nReplicas = options.replicas ?? 2;
  const nSentinels = options.sentinels ?? 3;
  const password = 'sentinel-test-pass';
  const ports = new Set<number>();
  while (ports.size < 1 + nReplicas + nSentinels) ports.add(await freePort());
  const [masterPort, ...rest] = [...ports];
  const started: Startable[] = [];
  const quiet = (c: Redis): Redis => c.on('error', () => undefined); // failures surface as rejected commands
  const client = (port: number): Redis => quiet(new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, maxRetriesPerRequest: 1 }));
  const sentinelClient = (port: number): Redis => quiet(new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 }));
  const ask = async <T>(c: Redis, f: (c: Redis) => Promise<T>): Promise<T> => {
    try {
      await c.connect();
      return await f(c);
    } finally {
      c.disconnect();
    }
  };
  try {
    const master = dataServer(masterPort!, password);
    started.push(master);
    await master.start();
    const replicas = rest.slice(0, nReplicas).map((p) => dataServer(p, password, masterPort));
    started.push(...replicas);
    await Promise.all(replicas.map((r) => r.start()));
    await until('every replica online at the master', 15_000, () =>
      ask(client(masterPort!), async (c) => ((await c.info('replication')).match(/state=online/g) ?? []).length === nReplicas),
    );
    const sentinels = rest.slice(nReplicas).map((p) => sentinel(p, masterPort!, password, options.downAfterMs ?? 1_000));
    started.push(...sentinels);
    await Promise.all(sentinels.map((s) => s.start()));
    await until('every sentinel knows the replicas and the other sentinels', 30_000, async () => {
      for (const s of sentinels) {
        const ok = await ask(sentinelClient(s.port), async (c) => {
          const reps = (await c.call('SENTINEL', 'replicas', SENTINEL_MASTER)) as unknown[];
          const others = (await c.call('SENTINEL', 'sentinels', SENTINEL_MASTER)) as unknown[];
          return reps.length === nReplicas && others.length === nSentinels - 1;
        });
        if (!ok) return false;
      }
      return true;
    });
    const set: SentinelSet = {
      master,
      replicas,
      sentinels,
      password,
      url: `redis+sentinel://:${password}@${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${SENTINEL_MASTER}`,
      async masterPort() {
        for (const s of sentinels) {
          try {
            const addr = (await ask(sentinelClient(s.port), (c) => c.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER))) as string[];
            return Number(addr[1]);
          } catch {
            /* try the next sentinel */
          }
        }
        throw new Error('no sentinel answered get-master-addr-by-name');
      },
      client,
      async dispose() {
        await Promise.all(started.map((s) => s.dispose()));
      },
    };
    return set;
  } catch (err) {
    await Promise.all(started.map((s) => s.dispose()));
    throw err;
  }
}

/**
 * Makes a replica lag behind its master on purpose, for as long as the test wants: it drops its link to the
 * master and cannot log in again (a wrong `masterauth`), so the master's next writes never reach it. (SIGSTOP
 * would not do: the kernel keeps receiving the replication stream into the socket buffer, and the replica
 * applies it on SIGCONT.) The replica stays up, answers its sentinels and can be promoted; once promoted it is
 * a master and the wrong `masterauth` no longer matters.
 */
export async function detachReplica(replica: Redis): Promise<void> {
  await replica.config('SET', 'masterauth', 'not-the-password');
  await replica.client('KILL', 'TYPE', 'master');
  const deadline = Date.now() + 10_000;
  while (!(await replica.info('replication')).includes('master_link_status:down')) {
    if (Date.now() > deadline) throw new Error('replica still linked to its master 10 s after its link was cut');
    await new Promise((r) => setTimeout(r, 50));
  }
}
