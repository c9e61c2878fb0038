/**
 * The container image's runtime, run as plain processes (no Docker engine runs on the project's machines):
 * the Dockerfile's ENTRYPOINT with only environment variables — the image's ENV plus what an operator sets —
 * serves /readyz; the Dockerfile's HEALTHCHECK command, run exactly as written, exits 0 against it and non-zero
 * against a closed port and a draining node; and the Kubernetes manifests' environment (ConfigMap + Secret),
 * pointed at real NATS (JetStream), Redis and PostgreSQL, starts a cluster node that is ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { dockerfileStages, execForm, k8sGatewayEnv, ROOT, stageEnv } from '../helpers/deploy-files.js';
import { freePort } from '../helpers/free-port.js';
import { tempDir } from '../helpers/node-process.js';
import { startNatsServer, startPostgres, startRedisServer, type TestServer } from '../helpers/servers.js';
import { waitFor } from '../helpers/wait.js';

const final = dockerfileStages().at(-1)!;
const ENTRYPOINT = execForm(final.instructions.find((i) => i.op === 'ENTRYPOINT')!.args);
const HEALTHCHECK = execForm(final.instructions.find((i) => i.op === 'HEALTHCHECK')!.args);
const IMAGE_ENV = stageEnv(final);
/** What a container has besides the image's ENV: a PATH and a HOME, nothing of the test runner's environment. */
const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tempDir('sb-home-') };

interface Proc {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

/** Runs the image's entrypoint (node resolved from PATH, as in the image) in the repository root (the image's WORKDIR holds dist/). */
function runEntrypoint(env: Record<string, string>): Proc {
  const [cmd, ...args] = ENTRYPOINT;
  const child = spawn(cmd!, args, { cwd: ROOT, env: { ...BASE_ENV, ...IMAGE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

/** Runs the HEALTHCHECK's command as Docker would (exec form, the container's environment); resolves with its exit code. */
function healthcheck(port: number): Promise<number | null> {
  const [cmd, ...args] = HEALTHCHECK;
  const child = spawn(cmd!, args, { env: { ...BASE_ENV, ...IMAGE_ENV, SWITCHBOARD_PORT: String(port) }, stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

const running: Proc[] = [];
const dirs: string[] = [BASE_ENV.HOME];
afterAll(async () => {
  for (const p of running) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the image entrypoint with the environment only (embedded engines)', () => {
  it('serves /readyz 200; the HEALTHCHECK exits 0 against it, non-zero on a closed port and while the node drains', async () => {
    const port = await freePort();
    const dataDir = tempDir('sb-image-data-');
    dirs.push(dataDir);
    // What `docker run -e SWITCHBOARD_PORT=… -e SWITCHBOARD_JWT_SECRET=… switchboard` gives the process.
    const proc = runEntrypoint({
      SWITCHBOARD_PORT: String(port),
      SWITCHBOARD_HOST: '127.0.0.1',
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_JWT_SECRET: 'an-image-test-secret-0123',
      SWITCHBOARD_API_KEY: 'an-image-test-api-key-0123',
      SWITCHBOARD_NODE_ID: 'image-test',
    });
    running.push(proc);
    await waitFor(async () => (await status(`http://127.0.0.1:${port}/readyz`)) === 200, 60_000, `readyz 200; output: ${proc.output().slice(-2000)}`, 100);
    // The environment was the configuration: not dev (the API needs the key), the node id given.
    expect((await fetch(`http://127.0.0.1:${port}/api/rooms/lobby/presence`)).status).toBe(401);
    expect(((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { node: string }).node).toBe('image-test');

    expect(await healthcheck(port)).toBe(0);
    expect(await healthcheck(await freePort())).not.toBe(0);

    // A draining node is not ready, so the check fails (the orchestrator stops routing to it); then it exits 0.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    proc.child.kill('SIGTERM');
    await waitFor(async () => (await status(`http://127.0.0.1:${port}/readyz`)) !== 200, 10_000, 'readyz no longer 200 after SIGTERM', 20);
    expect(await closed).toBe(4001);
    expect(await proc.exited).toBe(0);
    expect(await healthcheck(port)).not.toBe(0);
  });
});

describe('the Kubernetes manifests’ environment against real NATS, Redis and PostgreSQL', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.dispose()));
  });

  it('starts a cluster node from the ConfigMap and Secret alone (addresses and secrets replaced), ready with every check ok', async () => {
    const [nats, redis, pg] = await Promise.all([startNatsServer({ jetstream: true }), startRedisServer({ password: 'redis-image-pass' }), startPostgres()]);
    servers.push(nats, redis, pg);
    const port = await freePort();
    const env = {
      ...k8sGatewayEnv(),
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      DATABASE_URL: pg.url,
      // One test NATS server: the manifests' 3 replicas need the 3-server cluster.
      SWITCHBOARD_JETSTREAM_REPLICAS: '1',
      SWITCHBOARD_PORT: String(port),
      SWITCHBOARD_HOST: '127.0.0.1',
      SWITCHBOARD_NODE_ID: 'switchboard-7d9f-abcde',
    };
    const proc = runEntrypoint(env);
    running.push(proc);
    let body: { status?: string; checks?: Record<string, { ok: boolean }> } = {};
    await waitFor(
      async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
          body = (await res.json()) as typeof body;
          return res.status === 200 && body.checks?.history?.ok === true;
        } catch {
          return false;
        }
      },
      60_000,
      `cluster node ready; output: ${proc.output().slice(-2000)}`,
      100,
    );
    expect(Object.entries(body.checks ?? {}).filter(([, c]) => !c.ok)).toEqual([]);
    expect(await healthcheck(port)).toBe(0);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});
