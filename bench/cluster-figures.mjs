#!/usr/bin/env node
/**
 * Cross-node figures for a 3-node Switchboard cluster on one machine, over loopback (issue 4, "Done when").
 *
 * For each backplane (NATS, then Redis pub/sub) the script starts 3 gateway nodes sharing one throwaway
 * nats-server, redis-server and PostgreSQL (started here on free ports, deleted at the end), then:
 *   members:    3,000 members spread evenly over the 3 nodes (member g is on node g % 3), all in one room
 *               (--rooms 1, default) or in R rooms of 3000/R members (--rooms 30: room floor(g / 100), so every
 *               room has members on every node). One extra publisher connection per node joins every room.
 *   (a) throughput: each of the 3 publishers keeps up to --window (100) publishes in flight for --duration
 *               (10) s, round robin over the rooms; reported: acked publishes / s and deliveries / s received
 *               by the 3,000 members (publishers' own copies not counted), both inside the window.
 *   (b) latency:  --rate (200) publishes / s in total, split evenly over the 3 publishers, for --duration s;
 *               reported: receive time − the message's server `ts` on 10 sample members per node (p50/p99),
 *               and publish → ack on the publishers.
 * Per-process CPU (utime+stime from /proc, PostgreSQL summed over the postmaster and its children) is read
 * at the start and end of each window. Nothing is pinned: all processes share the machine's cores.
 *
 * Usage (repository root, after `npm run build`):
 *   node bench/cluster-figures.mjs [--rooms 1] [--members 3000] [--duration 10] [--window 100] [--rate 200]
 *                                  [--backplanes nats,redis] [--data-bytes 100] [--budget-s 600] [--out f.json]
 * JSON on stdout, progress on stderr. Children and servers are stopped by pid.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { finisher, freePort, start, started, startInfra, stop, uptime, waitPort } from './lib/infra.mjs';
import { clientFrame, frameType, PONG, RawWs } from './lib/raw-ws.mjs';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const role = process.argv[2] === 'load' ? 'load' : 'main';


function percentiles(values, ps = [50, 90, 99]) {
  if (values.length === 0) return { n: 0 };
  const a = Float64Array.from(values).sort();
  const out = {};
  for (const p of ps) out[`p${p}`] = a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
  out.max = a[a.length - 1];
  out.n = a.length;
  return out;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[cluster ${new Date().toISOString().slice(11, 23)}] ${a.join(' ')}\n`);

// ───────────────────────────── role: load (members + one publisher on one node) ─────────────────────────────

function runLoad() {
  let cfg = null;
  const members = [];
  let joined = 0;
  let errorFrames = 0;
  const errorSamples = [];
  let closed = 0;
  const now = { t: Date.now() };
  const origOnFrames = RawWs.prototype.onFrames;
  RawWs.prototype.onFrames = function (chunk) {
    now.t = Date.now();
    origOnFrames.call(this, chunk);
  };
  // Phase accounting
  let phase = null; // { name, t0, endAt }
  let delivered = 0; // member deliveries inside the window
  let deliveredTotal = 0;
  let lastMsgAt = 0;
  const sampleSet = new Set();
  let sampleLat = [];
  let seqErrors = 0;
  const lastSeq = new Map(); // sample idx|room -> seq

  const roomOf = (g) => (cfg.rooms === 1 ? `${cfg.prefix}x` : `${cfg.prefix}r${Math.floor(g / (cfg.totalMembers / cfg.rooms))}`);
  const roomsAll = () => (cfg.rooms === 1 ? [`${cfg.prefix}x`] : Array.from({ length: cfg.rooms }, (_, r) => `${cfg.prefix}r${r}`));

  const memberH = {
    onOpen(c) {
      c.send(`{"type":"connect","id":1,"user":"u${c.g}"}`);
    },
    onRefused(c, status) {
      errorFrames++;
      if (errorSamples.length < 5) errorSamples.push(`refused ${status}`);
    },
    onClose(c) {
      if (c.joined) closed++;
    },
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const t = frameType(buf, p, len);
      if (t === 'message') {
        deliveredTotal++;
        lastMsgAt = now.t;
        if (phase !== null && now.t >= phase.t0 && now.t < phase.endAt) delivered++;
        if (sampleSet.has(c.idx)) {
          const m = JSON.parse(buf.toString('utf8', p, p + len));
          const prev = lastSeq.get(c.idx);
          if (prev !== undefined && m.seq !== prev + 1) seqErrors++;
          lastSeq.set(c.idx, m.seq);
          if (phase !== null && m.ts >= phase.t0 && m.ts < phase.endAt) sampleLat.push(now.t - m.ts);
        }
      } else if (t === 'ping') c.send(PONG);
      else if (t === 'connected') c.send(`{"type":"join","id":2,"room":"${roomOf(c.g)}"}`);
      else if (t === 'joined') {
        if (c.joined) return;
        c.joined = true;
        if (sampleSet.has(c.idx)) lastSeq.set(c.idx, JSON.parse(buf.toString('utf8', p, p + len)).seq);
        joined++;
        pump();
      } else if (t === 'error') {
        errorFrames++;
        if (errorSamples.length < 5) errorSamples.push(buf.toString('utf8', p, p + Math.min(len, 300)));
      }
    },
  };
  let next = 0;
  let opening = 0;
  function pump() {
    opening = next - joined;
    while (next < cfg.n && next - joined < 100) {
      const c = new RawWs(next, memberH);
      c.g = 3 * next + cfg.node; // global member index
      members.push(c);
      next++;
      c.start(cfg.port, cfg.localAddress);
    }
    if (joined === cfg.n && pub.joinedRooms === pub.rooms.length && !pub.readySent) {
      pub.readySent = true;
      process.send({ ev: 'ready', joined });
    }
  }

  // Publisher connection
  const pub = { c: null, rooms: [], joinedRooms: 0, readySent: false, rr: 0, nextId: 100, inflight: 0, sentAt: new Map(),
    sent: 0, acked: 0, ackedInWindow: 0, errors: 0, ackLat: [], own: 0, mode: null, endAt: 0, timer: null };
  const data = () => JSON.stringify('x'.repeat(cfg.dataBytes));
  let dataStr = '';
  function publishOne() {
    const id = pub.nextId++;
    const room = pub.rooms[pub.rr++ % pub.rooms.length];
    pub.sentAt.set(id, Date.now());
    pub.c.sock.write(clientFrame(`{"type":"publish","id":${id},"room":"${room}","data":${dataStr}}`));
    pub.inflight++;
    pub.sent++;
  }
  function fillWindow() {
    if (pub.mode !== 'window' || Date.now() >= pub.endAt) return;
    pub.c.sock.cork();
    while (pub.inflight < cfg.window) publishOne();
    pub.c.sock.uncork();
  }
  const pubH = {
    onOpen(c) {
      c.send(`{"type":"connect","id":1,"user":"pub${cfg.node}"}`);
    },
    onRefused() {
      errorFrames++;
    },
    onClose() {},
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const t = frameType(buf, p, len);
      if (t === 'message') pub.own++;
      else if (t === 'ack' || t === 'error') {
        const m = JSON.parse(buf.toString('utf8', p, p + len));
        if (t === 'error') {
          errorFrames++;
          if (errorSamples.length < 5) errorSamples.push(buf.toString('utf8', p, p + Math.min(len, 300)));
        }
        const at = pub.sentAt.get(m.id);
        if (at === undefined) return;
        pub.sentAt.delete(m.id);
        pub.inflight--;
        if (t === 'error') pub.errors++;
        else {
          pub.acked++;
          const tn = now.t;
          if (phase !== null && tn >= phase.t0 && tn < phase.endAt) pub.ackedInWindow++;
          if (phase !== null && at >= phase.t0 && at < phase.endAt) pub.ackLat.push(tn - at);
        }
        fillWindow();
      } else if (t === 'ping') c.send(PONG);
      else if (t === 'connected') {
        pub.rooms.forEach((r, i) => c.send(`{"type":"join","id":${10 + i},"room":"${r}"}`));
      } else if (t === 'joined') {
        pub.joinedRooms++;
        pump();
      }
    },
  };

  process.on('message', (m) => {
    if (m.cmd === 'open') {
      cfg = m;
      dataStr = data();
      const step = Math.floor(cfg.n / cfg.samples);
      for (let i = 0; i < cfg.samples; i++) sampleSet.add(i * step);
      pub.rooms = roomsAll();
      pub.c = new RawWs(-1, pubH);
      pub.c.start(cfg.port, cfg.localAddress);
      pump();
    } else if (m.cmd === 'phase') {
      phase = { name: m.name, t0: m.t0, endAt: m.endAt };
      delivered = 0;
      sampleLat = [];
      pub.ackedInWindow = 0;
      pub.ackLat = [];
      pub.sent = 0;
      pub.acked = 0;
      pub.errors = 0;
      pub.endAt = m.endAt;
      const startAt = m.t0;
      setTimeout(() => {
        if (m.name === 'throughput') {
          pub.mode = 'window';
          fillWindow();
        } else {
          pub.mode = 'rate';
          const perS = m.ratePerS;
          let sentHere = 0;
          pub.timer = setInterval(() => {
            const tn = Date.now();
            if (tn >= pub.endAt) {
              clearInterval(pub.timer);
              return;
            }
            const due = Math.floor(((tn - startAt) * perS) / 1000);
            if (due > sentHere) {
              pub.c.sock.cork();
              while (sentHere < due) {
                publishOne();
                sentHere++;
              }
              pub.c.sock.uncork();
            }
          }, 5);
        }
      }, Math.max(0, startAt - Date.now()));
    } else if (m.cmd === 'stats') {
      const cu = process.cpuUsage();
      process.send({
        ev: 'stats',
        node: cfg.node,
        joined,
        closed,
        delivered,
        deliveredTotal,
        lastMsgAt,
        errorFrames,
        errorSamples,
        seqErrors,
        sampleLatMs: m.final ? sampleLat : undefined,
        pub: { sent: pub.sent, acked: pub.acked, ackedInWindow: pub.ackedInWindow, errors: pub.errors, inflight: pub.inflight,
          ownMessages: pub.own, ackLatMs: m.final ? pub.ackLat : undefined },
        cpuUs: cu.user + cu.system,
      });
    } else if (m.cmd === 'close') {
      for (const c of members) c.sock?.destroy();
      pub.c?.sock?.destroy();
      setTimeout(() => process.exit(0), 100);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ───────────────────────────── main ─────────────────────────────

function args() {
  const a = { rooms: 1, members: 3000, duration: 10, window: 100, rate: 200, backplanes: 'nats,redis', dataBytes: 100, budgetS: 600, samples: 10, out: null };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!(k in a)) throw new Error(`unknown option ${v[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(v[++i]) : v[++i];
  }
  return a;
}

const TICK = 100; // USER_HZ on Linux
function cpuSecondsOf(pid, withChildren = false) {
  const read = (p) => {
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICK };
    } catch {
      return null;
    }
  };
  let total = read(pid)?.cpu ?? 0;
  if (withChildren) {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      const r = read(d);
      if (r !== null && r.ppid === pid) total += r.cpu;
    }
  }
  return total;
}


async function main() {
  const opt = args();
  const budgetAt = Date.now() + opt.budgetS * 1000;
  const budget = setTimeout(() => {
    log('budget exceeded: stopping everything');
    finish(true);
  }, opt.budgetS * 1000);
  budget.unref();
  const result = {
    setup: {
      commit: (() => {
        try {
          return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
        } catch {
          return null;
        }
      })(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGB: Math.round(os.totalmem() / 2 ** 30),
      nats: execFileSync('nats-server', ['--version']).toString().trim(),
      redis: execFileSync('redis-server', ['--version']).toString().trim().split(' ').slice(0, 3).join(' '),
      options: opt,
      layout:
        opt.rooms === 1
          ? `1 room, ${opt.members} members (member g on node g % 3) + 1 publisher connection per node (also a member)`
          : `${opt.rooms} rooms x ${opt.members / opt.rooms} members (member g in room floor(g/${opt.members / opt.rooms}), on node g % 3) + 1 publisher per node joined to every room`,
      pinning: 'none: nats-server, redis-server, postgres, 3 nodes, 3 load processes and the orchestrator share all cores',
      loadBefore: uptime(),
    },
    runs: {},
  };
  const tmp = [];
  const finish = finisher(result, tmp, opt.out);
  process.on('SIGINT', () => finish(true));
  log('load before:', result.setup.loadBefore);

  // Infrastructure
  const { nats, redis, pg, natsPort, redisPort, pgPort, natsUrl, redisUrl, dbUrl, postgres } = await startInfra({ tmp });
  result.setup.postgres = postgres;
  log('infra up: nats', natsPort, 'redis', redisPort, 'postgres', pgPort);

  for (const bp of opt.backplanes.split(',')) {
    if (Date.now() > budgetAt - 60_000) break;
    result.runs[bp] = await runBackplane(bp, { natsUrl, redisUrl, dbUrl, nats, redis, pg, tmp, opt });
  }
  await finish(false);
}

async function runBackplane(bp, { natsUrl, redisUrl, dbUrl, nats, redis, pg, tmp, opt }) {
  log(`── backplane ${bp}`);
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const dataDir = mkdtempSync(join(os.tmpdir(), `sb-bench-node${i}-`));
    tmp.push(dataDir);
    const argv = [CLI, 'start', '--dev', '--host', '127.0.0.1', '--port', String(port), '--node-id', `node-${i + 1}`, '--nats', natsUrl,
      '--redis', redisUrl, '--database', dbUrl, '--log-level', 'warn', '--ping-interval-ms', '600000', '--data-dir', dataDir];
    if (bp === 'redis') argv.push('--backplane', 'redis');
    const c = start(`node-${i + 1}`, process.execPath, argv, { cwd: ROOT });
    c.port = port;
    nodes.push(c);
  }
  for (const n of nodes) await waitPort(n.port, n, n.name, 30_000);
  for (const n of nodes) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${n.port}/readyz`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${n.name} not ready: ${n.out.slice(-1500)}`);
      await sleep(200);
    }
  }
  log('3 nodes ready:', nodes.map((n) => n.port).join(' '));
  const loads = [];
  const prefix = `${bp}-${Date.now().toString(36)}-`;
  for (let i = 0; i < 3; i++) {
    const c = spawn(process.execPath, [SELF, 'load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.name = `load-${i + 1}`;
    started.push(c);
    c.msgs = [];
    c.waiters = [];
    c.on('message', (m) => {
      const w = c.waiters.findIndex((x) => x.ev === m.ev);
      if (w >= 0) c.waiters.splice(w, 1)[0].resolve(m);
      else c.msgs.push(m);
    });
    loads.push(c);
  }
  const waitEv = (c, ev, ms) =>
    new Promise((res, rej) => {
      const i = c.msgs.findIndex((m) => m.ev === ev);
      if (i >= 0) return res(c.msgs.splice(i, 1)[0]);
      const t = setTimeout(() => rej(new Error(`${c.name}: no ${ev} in ${ms} ms`)), ms);
      c.waiters.push({ ev, resolve: (m) => (clearTimeout(t), res(m)) });
    });
  const t0Join = Date.now();
  loads.forEach((c, i) =>
    c.send({ cmd: 'open', node: i, port: nodes[i].port, localAddress: `127.0.0.${2 + i}`, n: opt.members / 3, totalMembers: opt.members, rooms: opt.rooms,
      prefix, window: opt.window, dataBytes: opt.dataBytes, samples: opt.samples }),
  );
  await Promise.all(loads.map((c) => waitEv(c, 'ready', 120_000)));
  const joinS = (Date.now() - t0Join) / 1000;
  log(`all ${opt.members} members + 3 publishers joined in ${joinS.toFixed(1)} s`);
  await sleep(3000); // let presence batches settle

  const stats = async (final) => {
    loads.forEach((c) => c.send({ cmd: 'stats', final }));
    return Promise.all(loads.map((c) => waitEv(c, 'stats', 30_000)));
  };
  const procs = () => [
    ...nodes.map((n) => ({ name: n.name, pid: n.pid })),
    { name: 'nats-server', pid: nats.pid },
    { name: 'redis-server', pid: redis.pid },
    { name: 'postgres (all backends)', pid: pg.pid, children: true },
    ...loads.map((l) => ({ name: l.name, pid: l.pid })),
    { name: 'orchestrator', pid: process.pid },
  ];
  const drain = async () => {
    // wait until no member has received anything for 1.5 s (at most 60 s)
    const deadline = Date.now() + 60_000;
    for (;;) {
      await sleep(1000);
      const s = await stats(false);
      const last = Math.max(...s.map((x) => x.lastMsgAt));
      const inflight = s.reduce((a, x) => a + x.pub.inflight, 0);
      if ((Date.now() - last > 1500 && inflight === 0) || Date.now() > deadline) return { drainedAfterS: null, last, inflight };
    }
  };

  const out = { joinSeconds: joinS, nodeCommand: `node dist/cli/main.js start --dev --host 127.0.0.1 --port <p_i> --node-id node-<i> --nats <url> --redis <url> --database <url> --log-level warn --ping-interval-ms 600000 --data-dir <tmp>${bp === 'redis' ? ' --backplane redis' : ''}` };
  for (const name of ['throughput', 'latency']) {
    const before = (await stats(false)).reduce((a, x) => a + x.deliveredTotal, 0);
    const t0 = Date.now() + 1000;
    const endAt = t0 + opt.duration * 1000;
    loads.forEach((c) => c.send({ cmd: 'phase', name, t0, endAt, ratePerS: opt.rate / 3 }));
    await sleep(t0 - Date.now());
    const ps = procs();
    const cpu0 = ps.map((p) => cpuSecondsOf(p.pid, p.children));
    await sleep(endAt - Date.now());
    const cpu1 = ps.map((p) => cpuSecondsOf(p.pid, p.children));
    const wallS = opt.duration;
    log(`${name} window over; draining`);
    await drain();
    const s = await stats(true);
    const acked = s.reduce((a, x) => a + x.pub.ackedInWindow, 0);
    const delivered = s.reduce((a, x) => a + x.delivered, 0);
    const lat = s.map((x) => percentiles(x.sampleLatMs));
    const allLat = percentiles(s.flatMap((x) => x.sampleLatMs));
    const ackLat = percentiles(s.flatMap((x) => x.pub.ackLatMs));
    const fanout = opt.members / opt.rooms;
    const r = {
      windowS: wallS,
      publishesSent: s.reduce((a, x) => a + x.pub.sent, 0),
      publishesAcked: s.reduce((a, x) => a + x.pub.acked, 0),
      publishErrors: s.reduce((a, x) => a + x.pub.errors, 0),
      ackedPerS: acked / wallS,
      deliveriesPerS: delivered / wallS,
      expectedDeliveries: s.reduce((a, x) => a + x.pub.acked, 0) * fanout,
      membersReceivedInPhaseInclDrain: null,
      perNode: s.map((x, i) => ({ node: `node-${i + 1}`, ackedPerS: x.pub.ackedInWindow / wallS, deliveriesPerS: x.delivered / wallS, sampleLatencyMs: lat[i],
        membersJoined: x.joined, membersClosed: x.closed, errorFrames: x.errorFrames, errorSamples: x.errorSamples, seqErrorsOnSamples: x.seqErrors })),
      publishToReceiveMs: allLat,
      publishToAckMs: ackLat,
      cpuPercent: Object.fromEntries(ps.map((p, i) => [p.name, Math.round(((cpu1[i] - cpu0[i]) / wallS) * 1000) / 10])),
    };
    r.missingDeliveries = r.expectedDeliveries - (s.reduce((a, x) => a + x.deliveredTotal, 0) - before);
    r.nodeMetrics = {};
    for (const n of nodes) {
      const text = await fetch(`http://127.0.0.1:${n.port}/metrics`).then((x) => x.text()).catch(() => '');
      r.nodeMetrics[n.name] = text.split('\n').filter((l) => /^switchboard_(gap_fetches|slow_consumer|messages_dropped)[a-z_]*/.test(l));
    }
    r.membersReceivedInPhaseInclDrain = s.reduce((a, x) => a + x.deliveredTotal, 0) - before;
    r.cpuPercent.total = Math.round(Object.values(r.cpuPercent).reduce((a, b) => a + b, 0) * 10) / 10;
    // total deliveries since the phase started (drain included) vs expected, for a loss check
    out[name] = r;
    log(`${bp} ${name}: acked/s ${r.ackedPerS.toFixed(0)}, deliveries/s ${r.deliveriesPerS.toFixed(0)}, p50 ${allLat.p50} p99 ${allLat.p99} ms, cpu ${JSON.stringify(r.cpuPercent)}`);
  }
  const fin = await stats(false);
  out.membersDeliveredTotal = fin.reduce((a, x) => a + x.deliveredTotal, 0);
  out.closedMembers = fin.reduce((a, x) => a + x.closed, 0);
  for (const c of loads) {
    c.send({ cmd: 'close' });
  }
  await Promise.all(loads.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  for (const n of nodes) await stop(n, 'SIGTERM', 15_000);
  return out;
}

if (role === 'load') runLoad();
else main().catch((e) => {
  log('failed:', e.stack ?? e);
  for (const c of started.reverse()) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {}
  }
  setTimeout(() => process.exit(1), 500);
});
