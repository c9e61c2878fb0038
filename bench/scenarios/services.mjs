/**
 * Scenario `services` (client → backend-service traffic, issue 6; `--only services`, not in the default
 * run): 3 gateway nodes with the cluster flags (`--durable-services ledger`), 3 instances per service on
 * the backend SDK (bench/peers/service-instance.mjs, handlers that only count), one WebSocket client per
 * node in this orchestrator:
 *   (a) fire-and-forget `orders.create`: `servicesWindow` sends in flight per client for `servicesSeconds`;
 *   (b) the same against the durable `ledger.create` (JetStream work queue, handled after stored);
 *   (c) RPC round trip `orders.echo`, one at a time per client, `servicesRpcs` each: p50/p90/p99/max.
 * Nodes, instances, nats-server, redis-server and PostgreSQL run on every core; the clients on core 1.
 */
import { join } from 'node:path';
import WebSocket from 'ws';
import { log, sleep, start, stop } from '../lib/procs.mjs';
import { percentiles, round } from '../lib/stats.mjs';
import { ROOT, startSystem } from '../lib/systems.mjs';
import { getInfra } from './cluster.mjs';
import { SB_BENCH_FLAGS } from './single.mjs';

const INSTANCE = join(ROOT, 'bench', 'peers', 'service-instance.mjs');

/** A `ws` client that has sent `connect`; `request(frame)` resolves with the reply of the same id. */
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

/** An instance's handled count (it answers one line per line asked). */
const count = (inst) =>
  new Promise((r) => {
    inst.stdout.once('data', (d) => r(Number(String(d).trim().split('\n').pop())));
    inst.stdin.write('?\n');
  });

async function startInstances(name, natsUrl, durable, all) {
  const insts = [];
  for (let i = 0; i < 3; i++) {
    const c = start(`service ${name}-${i}`, process.execPath, [INSTANCE, name, natsUrl, durable ? '1' : '0'], { stdin: 'pipe' });
    all.push(c);
    await new Promise((r, j) => {
      c.stdout.once('data', r);
      c.once('exit', () => j(new Error(`${name} instance exited: ${c.out}`)));
    });
    insts.push(c);
  }
  return insts;
}

/** `window` sends in flight per client for `seconds`; then waits (≤ 60 s) until all are handled. */
async function upstream(clients, topic, insts, seconds, window) {
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const before = await Promise.all(insts.map(count));
  let sent = 0;
  let errors = 0;
  let seq = 0;
  const t0 = Date.now();
  const endAt = t0 + seconds * 1000;
  await Promise.all(
    clients.flatMap((c, k) =>
      Array.from({ length: window }, async () => {
        while (Date.now() < endAt) {
          const r = await c.request({ type: 'send', topic, data: { n: seq }, idem: `b-${k}-${seq++}` });
          if (r.type === 'sent') sent++;
          else errors++;
        }
      }),
    ),
  );
  const secs = (Date.now() - t0) / 1000;
  const after = await Promise.all(insts.map(count));
  // Durable messages may still be queued when the window ends: wait until all are handled, reported apart.
  const deadline = Date.now() + 60_000;
  let drained = after;
  while (Date.now() < deadline && sum(drained) - sum(before) < sent) {
    await sleep(200);
    drained = await Promise.all(insts.map(count));
  }
  const total = drained.map((v, i) => v - before[i]);
  return {
    seconds: round(secs, 1),
    sentPerSec: round(sent / secs, 0),
    handledPerSecInWindow: round((sum(after) - sum(before)) / secs, 0),
    sent,
    errors,
    handledTotal: sum(total),
    perInstance: total,
  };
}

export async function services(o) {
  const inf = await getInfra(o);
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const cluster = { natsUrl: inf.natsUrl, redisUrl: inf.redisUrl, dbUrl: inf.dbUrl, nodeId: `svc-${i}` };
    nodes.push(
      await startSystem('switchboard', {
        name: `services-node-${i}`,
        core: undefined,
        cluster,
        extra: [...SB_BENCH_FLAGS, '--durable-services', 'ledger', '--ping-interval-ms', '600000'],
      }),
    );
  }
  const instances = [];
  let clients = [];
  try {
    clients = await Promise.all(nodes.map((n, i) => wsClient(n.port, `bench-${i}`)));
    const orders = await startInstances('orders', inf.natsUrl, false, instances);
    await upstream(clients, 'orders.create', orders, 1, o.servicesWindow); // warm-up, not measured
    const fireAndForget = await upstream(clients, 'orders.create', orders, o.servicesSeconds, o.servicesWindow);
    log(`services fire-and-forget: ${fireAndForget.handledPerSecInWindow}/s handled`);
    const ledger = await startInstances('ledger', inf.natsUrl, true, instances);
    const durable = await upstream(clients, 'ledger.create', ledger, o.servicesSeconds, o.servicesWindow);
    log(`services durable: ${durable.handledPerSecInWindow}/s handled`);
    const lat = [];
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < o.servicesRpcs; i++) {
          const t = process.hrtime.bigint();
          const r = await c.request({ type: 'rpc', topic: 'orders.echo', data: i });
          if (r.type !== 'rpc.result') throw new Error(`rpc answered ${JSON.stringify(r)}`);
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
      }),
    );
    const warm = Math.min(100, Math.floor(o.servicesRpcs / 10)) * clients.length; // the first calls of each client are warm-up
    const rpcMs = Object.fromEntries(Object.entries(percentiles(lat.slice(warm), [50, 90, 99])).map(([k, v]) => [k, k === 'n' ? v : round(v, 2)]));
    log(`services rpc: p50 ${rpcMs.p50} p99 ${rpcMs.p99} ms`);
    return {
      layout:
        '3 gateway nodes (--durable-services ledger), 1 WebSocket client per node, 3 SDK instances per service whose handlers only count; nodes, instances and infrastructure on every core, clients on core 1',
      window: o.servicesWindow,
      fireAndForget,
      durable,
      rpcMs,
    };
  } finally {
    for (const c of clients) c.ws.close();
    await Promise.all([...instances.map((c) => stop(c)), ...nodes.map((n) => n.stop())]);
  }
}
