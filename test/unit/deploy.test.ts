/**
 * The packaging files, checked without a Docker engine or a Kubernetes cluster (none runs on the project's
 * machines): the Dockerfile's stages, user, port, healthcheck and entrypoint; the compose file parsed, its
 * mounts present, its NATS, nginx and sentinel configs accepted by the real binaries; the Kubernetes manifests parsed
 * and validated against the Kubernetes schemas (kubernetes-models), rendered by `kubectl kustomize`; and
 * every gateway environment (image, compose, manifests) accepted by the CLI's own configuration loader.
 * test/integration/image-entrypoint.test.ts runs the image's command and healthcheck as plain processes.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, envName, loadConfig } from '../../src/config/load.js';
import { parseSentinelUrl } from '../../src/connections/redis.js';
import { dockerfileStages, execForm, k8sGatewayEnv, k8sManifests, readYaml, root, stageEnv } from '../helpers/deploy-files.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait.js';

const KNOWN_ENV = new Set([...CONFIG_KEYS.map(envName), 'NATS_URL', 'REDIS_URL', 'DATABASE_URL', 'NODE_ENV']);
const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

/** Every name is one the CLI reads, and the loader accepts the whole environment. */
function expectGatewayEnv(env: Record<string, string>): void {
  expect(Object.keys(env).filter((k) => !KNOWN_ENV.has(k))).toEqual([]);
  expect(() => loadConfig({}, env)).not.toThrow();
}

describe('Dockerfile', () => {
  const stages = dockerfileStages();
  const final = stages[stages.length - 1]!;
  const ops = (op: string): string[] => final.instructions.filter((i) => i.op === op).map((i) => i.args);

  it('builds with npm ci && npm run build, then runs a slim Node 20 with production dependencies and dist/ only', () => {
    const build = stages.find((s) => s.name === 'build')!;
    expect(build.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)).toEqual([expect.stringMatching(/^npm ci\b/), 'npm run build']);
    const deps = stages.find((s) => s.name === 'deps')!;
    expect(deps.instructions.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    expect(final.from).toBe('node:20-slim');
    expect(final.name).toBeUndefined();
    expect(ops('COPY')).toEqual([
      '--from=deps /app/node_modules ./node_modules',
      '--from=deps /app/package.json ./package.json',
      '--from=build /src/dist ./dist',
    ]);
  });

  it('runs as the non-root node user, exposes 8080 and starts the CLI', () => {
    expect(ops('USER')).toEqual(['node']);
    expect(ops('EXPOSE')).toEqual(['8080']);
    expect(execForm(ops('ENTRYPOINT')[0]!)).toEqual(['node', 'dist/cli/main.js', 'start']);
    expect(ops('HEALTHCHECK')[0]).toMatch(/CMD \["node", "-e", ".*\/readyz/);
  });

  it('copies only files that exist and that .dockerignore does not exclude, and ignores node_modules and dist', () => {
    const ignored = readFileSync(root('.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
    for (const stage of stages)
      for (const i of stage.instructions.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
        const sources = i.args.split(/\s+/).slice(0, -1);
        for (const s of sources) {
          expect(existsSync(root(s)), s).toBe(true);
          expect(ignored, s).not.toContain(s);
        }
      }
  });

  it("has an environment the configuration loader accepts (with a token key, which the image can't ship)", () => {
    const env = stageEnv(final);
    expect(env).toMatchObject({ SWITCHBOARD_PORT: '8080', SWITCHBOARD_DATA_DIR: '/var/lib/switchboard' });
    expect(() => loadConfig({}, env)).toThrow(/jwtSecret|dev/);
    expectGatewayEnv({ ...env, SWITCHBOARD_JWT_SECRET: 'a-secret-of-16-chars+' });
  });
});

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  stop_grace_period?: string;
}

describe('deploy/compose.yaml', () => {
  const compose = readYaml(root('deploy', 'compose.yaml')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  const services = compose.services;
  const gateways = ['node-1', 'node-2', 'node-3'];

  const redisServices = ['redis-master', 'redis-replica-1', 'redis-replica-2', 'redis-sentinel-1', 'redis-sentinel-2', 'redis-sentinel-3'];

  it('has 3 NATS servers, Redis under Sentinel, PostgreSQL, 3 gateways from the image, nginx, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['nats-1', 'nats-2', 'nats-3', ...redisServices, 'postgres', ...gateways, 'nginx', 'prometheus', 'grafana'].sort(),
    );
    for (const g of gateways) {
      const s = services[g]!;
      expect(s.build).toEqual({ context: '..', dockerfile: 'Dockerfile' });
      expect(existsSync(resolve(root('deploy'), s.build!.context, s.build!.dockerfile))).toBe(true);
      expect(s.environment?.SWITCHBOARD_NODE_ID).toBe(g);
      expect(Number.parseInt(s.stop_grace_period ?? '0', 10) * 1000).toBeGreaterThan(Number(loadConfig({}, s.environment).drainTimeoutMs));
    }
  });

  it('gives each gateway an environment the CLI accepts: cluster mode on the 3 NATS servers with JetStream replicas 3', () => {
    for (const g of gateways) {
      const env = services[g]!.environment!;
      expectGatewayEnv(env);
      const config = loadConfig({}, env);
      expect(config.nats).toBe('nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222');
      expect(config.jetstreamReplicas).toBe(3);
      expect(config.database).toBeDefined();
      // Redis through the 3 sentinels, for the master name they monitor.
      const address = parseSentinelUrl(config.redis!);
      expect(address.sentinels).toEqual(['redis-sentinel-1', 'redis-sentinel-2', 'redis-sentinel-3'].map((host) => ({ host, port: 26379 })));
      expect(readFileSync(root('deploy', 'compose', 'sentinel.conf'), 'utf8')).toContain(`sentinel monitor ${address.name} redis-master 6379 2`);
    }
    for (const r of ['redis-replica-1', 'redis-replica-2'])
      expect(services[r]!.command).toEqual(expect.arrayContaining(['--replicaof', 'redis-master', '6379']));
  });

  it.skipIf(!has('redis-server'))('has a sentinel config that a real sentinel (redis-server --sentinel) runs with', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-sentinel-t-'));
    const port = await freePort();
    const conf = join(dir, 'sentinel.conf');
    // The compose service name resolves only inside compose's network: the master's address becomes loopback.
    writeFileSync(
      conf,
      readFileSync(root('deploy', 'compose', 'sentinel.conf'), 'utf8')
        .replace('port 26379', `port ${port}\nbind 127.0.0.1`)
        .replace('redis-master', '127.0.0.1'),
    );
    const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined); // refused until the sentinel listens; the waitFor retries
    try {
      let addr: unknown;
      await waitFor(
        async () => {
          try {
            if (client.status !== 'ready') await client.connect();
            addr = await client.call('SENTINEL', 'get-master-addr-by-name', 'switchboard');
            return true;
          } catch {
            if (client.status !== 'ready') client.disconnect();
            return false;
          }
        },
        15_000,
        'the sentinel answers',
        100,
      );
      expect(addr).toEqual(['127.0.0.1', '6379']);
    } finally {
      client.disconnect();
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mounts only files that exist, and names only declared volumes', () => {
    for (const [name, s] of Object.entries(services))
      for (const v of s.volumes ?? []) {
        const [source] = v.split(':');
        if (source!.startsWith('.')) expect(existsSync(resolve(root('deploy'), source!)), `${name}: ${v}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: ${v}`).toContain(source);
      }
  });

  it('scrapes the gateways by their service names, and provisions the dashboard and data source', () => {
    const prom = readYaml(root('deploy', 'prometheus.yml')) as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual(gateways.map((g) => `${g}:8080`));
    const ds = readYaml(root('deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yaml')) as { datasources: { url: string; isDefault: boolean }[] };
    expect(ds.datasources[0]).toMatchObject({ url: 'http://prometheus:9090', isDefault: true });
    const dash = readYaml(root('deploy', 'grafana', 'provisioning', 'dashboards', 'switchboard.yaml')) as { providers: { options: { path: string } }[] };
    expect(services.grafana!.volumes).toContain(`./grafana/switchboard.json:${dash.providers[0]!.options.path}/switchboard.json:ro`);
  });

  it.skipIf(!has('nats-server'))('has a NATS config that nats-server accepts, routing to all 3 servers', () => {
    const conf = root('deploy', 'compose', 'nats.conf');
    const r = spawnSync('nats-server', ['-t', '-c', conf], { env: { ...process.env, NATS_SERVER_NAME: 'nats-1' }, encoding: 'utf8' });
    expect(r.stderr + r.stdout).toMatch(/is valid/);
    expect(r.status).toBe(0);
    for (const n of ['nats-1', 'nats-2', 'nats-3']) expect(readFileSync(conf, 'utf8')).toContain(`nats://${n}:6222`);
  });

  it.skipIf(!has('nginx'))('has an nginx config that nginx accepts, proxying to the 3 gateways with WebSocket upgrades', () => {
    const text = readFileSync(root('deploy', 'compose', 'nginx.conf'), 'utf8');
    expect([...text.matchAll(/server (node-\d):8080/g)].map((m) => m[1])).toEqual(gateways);
    expect(text).toMatch(/proxy_set_header Upgrade \$http_upgrade/);
    // The service names resolve only inside compose's network, and the paths are the image's: test a copy.
    const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-t-'));
    try {
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, text.replace(/node-\d:8080/g, '127.0.0.1:8080').replace('listen 80;', 'listen 127.0.0.1:1;'));
      const r = spawnSync('nginx', ['-t', '-p', dir, '-c', conf, '-g', `pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')};`], {
        encoding: 'utf8',
      });
      expect(r.stderr).toMatch(/syntax is ok/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface Model {
  validate(): void;
}
const MODELS: Record<string, new (data: never) => Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
const validateManifest = (doc: Record<string, unknown>): void => {
  const Ctor = MODELS[`${String(doc.apiVersion)}/${String(doc.kind)}`];
  if (Ctor === undefined) throw new Error(`no schema for ${String(doc.apiVersion)} ${String(doc.kind)}`);
  new Ctor(doc as never).validate();
};

interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  name: string;
  ports: { name: string; containerPort: number }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  lifecycle: { preStop: { exec: { command: string[] } } };
  resources: { requests: { cpu: string; memory: string }; limits: { memory: string } };
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  containers: Container[];
}

describe('deploy/k8s', () => {
  const manifests = k8sManifests();
  const byKind = (kind: string): Record<string, unknown> => manifests.find((m) => m.doc.kind === kind)!.doc;

  it('has a Deployment, Service, PodDisruptionBudget, ConfigMap and Secret, each valid against the Kubernetes schema', () => {
    expect(manifests.map((m) => m.doc.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service']);
    for (const m of manifests) expect(() => validateManifest(m.doc), m.file).not.toThrow();
  });

  it('the schema check bites: a mistyped field fails', () => {
    const bad = structuredClone(byKind('Deployment')) as { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
    bad.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'http';
    expect(() => validateManifest(bad as unknown as Record<string, unknown>)).toThrow(/containerPort must be integer/);
    const noSelector = structuredClone(byKind('PodDisruptionBudget')) as { spec: Record<string, unknown> };
    noSelector.spec.maxUnavailable = [1];
    expect(() => validateManifest(noSelector as unknown as Record<string, unknown>)).toThrow(/maxUnavailable/);
  });

  it('probes /readyz for readiness and /healthz for liveness; gives the drain time before the kill', () => {
    const pod = (byKind('Deployment') as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080 }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const [cmd, seconds] = c.lifecycle.preStop.exec.command;
    expect(cmd).toBe('sleep');
    const config = loadConfig({}, k8sGatewayEnv());
    // The grace period covers the preStop sleep, the whole drain and the engines' close (~2 s).
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Number(seconds) + config.drainTimeoutMs / 1000 + 2);
    expect(config.drainSpreadMs).toBeLessThanOrEqual(config.drainTimeoutMs);
    expect(c.resources.requests).toEqual({ cpu: '1', memory: '512Mi' });
  });

  it('selects the pods by the same labels in the Deployment, Service and PodDisruptionBudget', () => {
    const labels = (byKind('Deployment') as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    expect((byKind('Service') as { spec: { selector: Record<string, string> } }).spec.selector).toEqual(labels);
    expect((byKind('PodDisruptionBudget') as { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector.matchLabels).toEqual(labels);
  });

  it('configures the gateways with an environment the CLI accepts (cluster mode)', () => {
    const env = k8sGatewayEnv();
    expectGatewayEnv(env);
    const config = loadConfig({}, env);
    expect(config.dev).toBe(false);
    expect([config.nats, config.redis, config.database].every((v) => v !== undefined)).toBe(true);
  });

  it.skipIf(!has('kubectl'))('renders with kubectl kustomize (offline) to exactly the manifest files', () => {
    const kust = readYaml(root('deploy', 'k8s', 'kustomization.yaml')) as { resources: string[] };
    expect([...kust.resources].sort()).toEqual([...new Set(manifests.map((m) => m.file))].sort());
    const out = execFileSync('kubectl', ['kustomize', root('deploy', 'k8s')], { encoding: 'utf8', timeout: 30_000 });
    expect([...out.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]).sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service']);
  });
});
