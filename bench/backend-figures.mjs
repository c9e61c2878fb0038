#!/usr/bin/env node
/**
 * Backend-service figures (issue 6, "Done when"), one machine, loopback:
 *   3 gateway nodes (--dev) over one throwaway nats-server with JetStream, redis-server and PostgreSQL;
 *   3 service instances per service, each its own process on the backend SDK (dist/backend), handlers that
 *   only count;
 *   (a) upstream, fire-and-forget (service `orders`): one WebSocket client per node keeps up to --window (200)
 *       `send` frames in flight for --duration (10) s; reported: `sent` replies / s and handled / s (sum of the
 *       instances' counts over the same window), and the split over instances;
 *   (b) the same for a durable service (`ledger`, in --durable-services): handled after JetStream stored it;
 *   (c) RPC round trip: one client per node, one `rpc` at a time (no concurrency), --rpcs (2000) each;
 *       reported: p50 / p99 / max of frame sent → `rpc.result` received.
 * Nothing is pinned. Load averages before and after are in `setup`.
 *
 * Usage (repository root, after `npm run build`):
 *   node bench/backend-figures.mjs [--duration 10] [--window 200] [--rpcs 2000] [--out f.json]
 * JSON on stdout, progress on stderr. Children and servers are stopped by pid.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { finisher, freePort, start, startInfra, uptime, waitPort } from './lib/infra.mjs';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[backend ${new Date().toISOString().slice(11, 23)}] ${a.join(' ')}\n`);

function percentiles(values) {
  const a = Float64Array.from(values).sort();
  const at = (p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
  return { n: a.length, p50: at(50), p90: at(90), p99: at(99), max: a[a.length - 1] };
}

// ───────────── role: service instance (counts handled messages; answers "count" on stdin) ─────────────
async function runService(name, natsUrl, durable) {
  const { service } = await import(join(ROOT, 'dist', 'backend', 'index.js'));
  let handled = 0;
  const svc = await service(name, { nats: natsUrl, durable, concurrency: 256, onError: (e) => process.stderr.write(`${e}\n`) });
  svc.handle('create', () => {
    handled++;
  });
  svc.handle('echo', (msg) => msg.data);
  await svc.ready();
  process.stdout.write('ready\n');
  process.stdin.on('data', () => process.stdout.write(`${handled}\n`));
}

function args() {
  const a = { duration: 10, window: 200, rpcs: 2000, out: null };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option ${v[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(v[++i]) : v[++i];
  }
  return a;
}

function wsClient(port, user) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const pending = new Map();
    let next = 1;
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'ping') ws.send('{"type":"pong"}');
      const p = pending.get(f.id);
      if (p !== undefined) {
        pending.delete(f.id);
        p(f);
      }
    });
    const request = (frame) =>
      new Promise((r) => {
        const id = next++;
        pending.set(id, r);
        ws.send(JSON.stringify({ ...frame, id }));
      });
    ws.once('open', async () => {
      const c = await request({ type: 'connect', user });
      if (c.type !== 'connected') rej(new Error(JSON.stringify(c)));
      else res({ ws, request });
    });
    ws.once('error', rej);
  });
}

/** Asks an instance for its handled count (one line per question). */
function count(inst) {
  return new Promise((r) => {
    inst.stdout.once('data', (d) => r(Number(String(d).trim().split('\n').pop())));
    inst.stdin.write('?\n');
  });
}

async function startInstances(name, natsUrl, durable) {
  const insts = [];
  for (let i = 0; i < 3; i++) {
    const c = start(`${name}-${i}`, process.execPath, [SELF, 'service', name, natsUrl, durable ? '1' : '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((r, j) => {
      c.stdout.once('data', r);
      c.once('exit', () => j(new Error(`${name} instance exited: ${c.out}`)));
    });
    insts.push(c);
  }
  return insts;
}

async function upstream(clients, topic, insts, opt) {
  const before = await Promise.all(insts.map(count));
  let sent = 0;
  let errors = 0;
  const endAt = Date.now() + opt.duration * 1000;
  const t0 = Date.now();
  let seq = 0;
  await Promise.all(
    clients.flatMap((c, k) =>
      Array.from({ length: opt.window }, async () => {
        while (Date.now() < endAt) {
          const r = await c.request({ type: 'send', topic, data: { n: seq }, idem: `b-${k}-${seq++}` });
          if (r.type === 'sent') sent++;
          else errors++;
        }
      }),
    ),
  );
  const seconds = (Date.now() - t0) / 1000;
  const after = await Promise.all(insts.map(count));
  // Durable messages may still be queued at the end of the window: wait until all are handled, reported apart.
  const deadline = Date.now() + 60_000;
  let drained = after;
  while (Date.now() < deadline) {
    drained = await Promise.all(insts.map(count));
    if (drained.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0) >= sent) break;
    await sleep(200);
  }
  const inWindow = after.map((v, i) => v - before[i]);
  const total = drained.map((v, i) => v - before[i]);
  return {
    seconds,
    sentPerSec: Math.round(sent / seconds),
    handledPerSecInWindow: Math.round(inWindow.reduce((a, b) => a + b, 0) / seconds),
    sent,
    errors,
    handledTotal: total.reduce((a, b) => a + b, 0),
    perInstance: total,
  };
}

async function main() {
  const opt = args();
  const tmp = [];
  const result = {
    setup: {
      commit: execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      nats: execFileSync('nats-server', ['--version']).toString().trim(),
      options: opt,
      layout: '3 gateway nodes, 1 WebSocket client per node, 3 SDK instances per service, nats-server -js, redis, postgres; nothing pinned',
      loadBefore: uptime(),
    },
  };
  const finish = finisher(result, tmp, opt.out);
  process.on('SIGINT', () => void finish(true));
  try {
    const infra = await startInfra({ tmp, jetstream: true });
    result.setup.postgres = infra.postgres;
    const ports = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dataDir = mkdtempSync(join(os.tmpdir(), `sb-bench-node${i}-`));
      tmp.push(dataDir);
      const c = start(`node-${i + 1}`, process.execPath, [CLI, 'start', '--dev', '--host', '127.0.0.1', '--port', String(port), '--node-id', `node-${i + 1}`,
        '--nats', infra.natsUrl, '--redis', infra.redisUrl, '--database', infra.dbUrl, '--durable-services', 'ledger', '--log-level', 'warn',
        '--ping-interval-ms', '600000', '--data-dir', dataDir], { cwd: ROOT });
      await waitPort(port, c, c.name, 30_000);
      ports.push(port);
    }
    log('nodes up', ports.join(','));
    const clients = await Promise.all(ports.map((p, i) => wsClient(p, `bench-${i}`)));
    const orders = await startInstances('orders', infra.natsUrl, false);
    // Warm-up (JIT, connections), not measured.
    await upstream(clients, 'orders.create', orders, { ...opt, duration: 1 });
    log('fire-and-forget');
    result.fireAndForget = await upstream(clients, 'orders.create', orders, opt);
    log(JSON.stringify(result.fireAndForget));
    const ledger = await startInstances('ledger', infra.natsUrl, true);
    log('durable');
    result.durable = await upstream(clients, 'ledger.create', ledger, opt);
    log(JSON.stringify(result.durable));
    log('rpc');
    const lat = [];
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < opt.rpcs; i++) {
          const t = process.hrtime.bigint();
          const r = await c.request({ type: 'rpc', topic: 'orders.echo', data: i });
          if (r.type !== 'rpc.result') throw new Error(JSON.stringify(r));
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }),
    );
    result.rpcMs = percentiles(lat.slice(clients.length * 100)); // first 100 per client are warm-up
    log(JSON.stringify(result.rpcMs));
    for (const c of clients) c.ws.close();
    await finish(false);
  } catch (err) {
    log(String(err?.stack ?? err));
    result.error = String(err);
    await finish(true);
  }
}

if (process.argv[2] === 'service') await runService(process.argv[3], process.argv[4], process.argv[5] === '1');
else await main();
