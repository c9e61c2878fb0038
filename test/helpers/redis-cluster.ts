/**
 * A throwaway Redis Cluster on loopback free ports: N masters (3 by default), optionally R replicas each, real
 * redis-server processes with `cluster-enabled yes`, each in its own temp directory, with a password; the slots
 * are spread over the masters by `redis-cli --cluster create`. Resolves once every node reports
 * `cluster_state:ok` and every master has its replicas online.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { managed, type TestServer } from './servers.js';

export interface RedisClusterSet {
  /** The masters at creation (a failover can change who is master: see `masterPorts`). */
  masters: TestServer[];
  replicas: TestServer[];
  password: string;
  /** `redis+cluster://:password@127.0.0.1:p1,127.0.0.1:p2,…` (every node, masters and replicas), the address the node is given. */
  url: string;
  /** A direct client to one master (the caller disconnects it). */
  client(port: number): Redis;
  /** Keys held by each master at creation, in the order of `masters`. */
  keysPerMaster(): Promise<number[]>;
  /** The ports of the nodes that are masters now (asked of the live nodes). */
  masterPorts(): Promise<number[]>;
  /** FLUSHALL on every master. */
  flush(): Promise<void>;
  dispose(): Promise<void>;
}

type Startable = TestServer & { start(): Promise<void> };

export async function startRedisCluster(size = 3, replicasPerMaster = 0): Promise<RedisClusterSet> {
  const password = 'cluster-test-pass';
  const ports = new Set<number>();
  while (ports.size < size * (1 + replicasPerMaster)) ports.add(await freePort());
  const all = [...ports].map((port) => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-redis-c-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000');
    args.push('--requirepass', password, '--masterauth', password);
    return managed('redis-server (cluster)', port, `redis://:${password}@127.0.0.1:${port}`, dir, () =>
      spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }),
    ) as Startable;
  });
  const client = (port: number): Redis => {
    const c = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, maxRetriesPerRequest: 1 });
    c.on('error', () => undefined); // failures surface as rejected commands
    return c;
  };
  const each = async <T>(f: (c: Redis) => Promise<T>, servers: TestServer[] = all): Promise<T[]> =>
    Promise.all(
      servers.map(async (m) => {
        const c = client(m.port);
        try {
          await c.connect();
          return await f(c);
        } finally {
          c.disconnect();
        }
      }),
    );
  try {
    await Promise.all(all.map((m) => m.start()));
    const create = ['-a', password, '--no-auth-warning', '--cluster', 'create', ...all.map((m) => `127.0.0.1:${m.port}`)];
    execFileSync('redis-cli', [...create, '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], { stdio: 'pipe', timeout: 30_000 });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const states = await each(async (c) => ((await c.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok'));
      const online = await each(async (c) => {
        const info = await c.info('replication');
        return !info.includes('role:master') || (info.match(/state=online/g) ?? []).length === replicasPerMaster;
      });
      if (states.every(Boolean) && online.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error('redis cluster: not every node reports cluster_state:ok (and its replicas online) within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await Promise.all(all.map((m) => m.dispose()));
    throw err;
  }
  const roles = await each(async (c) => ((await c.call('ROLE')) as unknown[])[0]);
  const masters = all.filter((_, i) => roles[i] === 'master');
  const replicas = all.filter((_, i) => roles[i] !== 'master');
  const alive = async (): Promise<TestServer[]> => {
    const up = await Promise.all(all.map(async (m) => (await each(async () => true, [m]).catch(() => [false]))[0]));
    return all.filter((_, i) => up[i] === true);
  };
  return {
    masters,
    replicas,
    password,
    url: `redis+cluster://:${password}@${all.map((m) => `127.0.0.1:${m.port}`).join(',')}`,
    client,
    keysPerMaster: () => each((c) => c.dbsize(), masters),
    masterPorts: async () => {
      const live = await alive();
      const roles = await each(async (c) => ((await c.call('ROLE')) as unknown[])[0], live);
      return live.filter((_, i) => roles[i] === 'master').map((m) => m.port);
    },
    flush: async () => {
      await each((c) => c.flushall(), masters);
    },
    dispose: async () => {
      await Promise.all(all.map((m) => m.dispose()));
    },
  };
}
