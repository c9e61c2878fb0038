#!/usr/bin/env node
/**
 * Gateway-core figures, measured on one machine over loopback:
 *
 *   Figure 1: memory per idle connection at N (default 10,000) connections, each connected and joined to
 *             one room (100 rooms x 100 members; optionally also all N in one room), for a Switchboard
 *             node and, as a floor, a bare `ws` WebSocketServer that keeps one tiny object per connection.
 *   Figure 2: messages delivered per second in one room of 1,000 members with one publisher keeping up to
 *             200 publishes in flight (100-byte data) for 10 s.
 *
 * Usage (from the repository root, after `npm run build`):
 *   node bench/core-figures.mjs [--conns 10000] [--procs 4] [--rooms 100] [--same-room]
 *                               [--hot-members 1000] [--hot-procs 2] [--duration 10] [--window 200]
 *                               [--data-bytes 100] [--only fig1,fig1-one-room,fig2] [--out results.json]
 *                               [--server-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"]   (diagnosis only)
 *
 * The servers (Switchboard node or the floor server) run on core 0 (`taskset -c 0`); the load generators,
 * the publisher and this orchestrator on core 1. Load generators are child processes of this file
 * (roles `clients`, `publisher`, `floor`) speaking WebSocket over raw `net` sockets: a minimal HTTP
 * upgrade, masked client frames, and server frames classified by the bytes of their "type" field
 * without parsing JSON (except on a few sample members and for acks).
 *
 * Results are printed as one JSON document on stdout; progress goes to stderr. Every phase has a
 * deadline and the whole run a budget (--budget-s, default 900 s), after which children are killed
 * (by pid) and what was measured so far is printed.
 */
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientFrame, frameType, PONG, RawWs } from './lib/raw-ws.mjs';
import v8 from 'node:v8';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const role = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'main';


function percentiles(values, ps) {
  if (values.length === 0) return Object.fromEntries(ps.map((p) => [`p${p}`, null]));
  const a = Float64Array.from(values).sort();
  const out = {};
  for (const p of ps) out[`p${p}`] = a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
  out.max = a[a.length - 1];
  out.n = a.length;
  return out;
}

const median = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${a.join(' ')}\n`);

// ───────────────────────────── role: clients (load generator) ─────────────────────────────

function runClients() {
  let conns = [];
  let cfg = null;
  let joined = 0;
  let refused = 0;
  let retries = 0;
  let failures = 0;
  let dropped = 0; // closed after joining
  let errorFrames = 0;
  const errorSamples = [];
  const serverCloses = {};
  let presenceFrames = 0;
  let presenceBytes = 0;
  let pings = 0;
  let msgCount; // Uint32Array per connection
  let win = null; // { t0, endAt }
  let inWindow = 0;
  let total = 0;
  let lastMsgAt = 0;
  let buckets = [];
  let inflight = 0;
  let nextToStart = 0;
  let readySent = false;
  const samples = new Map(); // idx -> { lastSeq, firstSeq, count, outOfOrder, gaps, dups, lat: [] }
  let cpuAtWindow = null;

  const h = {
    onOpen(c) {
      c.send(`{"type":"connect","id":1,"user":"${cfg.userPrefix}${c.idx}"}`);
    },
    onRefused(c, status, retryAfterS) {
      refused++;
      c.refusedStatus = status;
      c.retryAfterS = retryAfterS;
    },
    onServerClose(c, code) {
      serverCloses[code] = (serverCloses[code] ?? 0) + 1;
    },
    onClose(c) {
      if (c.joined) {
        dropped++;
        return;
      }
      // Never joined: refused (503) or failed; retry after Retry-After (or 1 s), at most 5 times.
      inflight--;
      c.attempts = (c.attempts ?? 0) + 1;
      if (c.attempts > 5) {
        failures++;
        pump();
        return;
      }
      retries++;
      const again = new RawWs(c.idx, h);
      again.attempts = c.attempts;
      conns[c.idx] = again;
      inflight++;
      setTimeout(() => again.start(cfg.port, cfg.localAddress), (c.retryAfterS ?? 1) * 1000);
      pump();
    },
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const t = frameType(buf, p, len);
      if (t === 'message') {
        msgCount[c.idx]++;
        total++;
        const now = this.now;
        lastMsgAt = now;
        if (win !== null && now >= win.t0 && now < win.endAt) {
          inWindow++;
          const b = Math.floor((now - win.t0) / 1000);
          buckets[b] = (buckets[b] ?? 0) + 1;
        }
        const s = samples.get(c.idx);
        if (s !== undefined) {
          const m = JSON.parse(buf.toString('utf8', p, p + len));
          if (s.count === 0) s.firstSeq = m.seq;
          else if (m.seq === s.lastSeq) s.dups++;
          else if (m.seq < s.lastSeq) s.outOfOrder++;
          else if (m.seq !== s.lastSeq + 1) s.gaps++;
          if (s.expectFirst !== undefined && s.count === 0 && m.seq !== s.expectFirst) s.badFirst = m.seq;
          s.lastSeq = m.seq;
          s.count++;
          s.lat.push(now - m.ts);
        }
      } else if (t === 'ping') {
        pings++;
        c.send(PONG);
      } else if (t === 'presence') {
        presenceFrames++;
        presenceBytes += len;
      } else if (t === 'connected') {
        c.send(`{"type":"join","id":2,"room":"${roomOf(c.idx)}"}`);
      } else if (t === 'joined') {
        if (c.joined) return;
        c.joined = true;
        const s = samples.get(c.idx);
        if (s !== undefined) s.expectFirst = JSON.parse(buf.toString('utf8', p, p + len)).seq + 1;
        joined++;
        inflight--;
        pump();
      } else if (t === 'error') {
        errorFrames++;
        if (errorSamples.length < 5) errorSamples.push(buf.toString('utf8', p, p + Math.min(len, 300)));
      }
    },
    now: Date.now(),
  };

  function roomOf(idx) {
    if (cfg.room !== undefined) return cfg.room;
    return `r${(cfg.roomOffset + idx) % cfg.rooms}`;
  }

  function pump() {
    while (inflight < cfg.concurrency && nextToStart < cfg.n) {
      const c = new RawWs(nextToStart, h);
      conns[nextToStart] = c;
      nextToStart++;
      inflight++;
      c.start(cfg.port, cfg.localAddress);
    }
    if (!readySent && joined + failures >= cfg.n) {
      readySent = true;
      send({ ev: 'ready', joined, failures, refused, retries });
    }
  }

  // Stamp the time once per data chunk rather than per frame.
  const origOnFrames = RawWs.prototype.onFrames;
  RawWs.prototype.onFrames = function (chunk) {
    h.now = Date.now();
    origOnFrames.call(this, chunk);
  };

  const send = (m) => process.send(m);
  let progressTimer = null;

  function stats(final) {
    let min = Infinity;
    let max = 0;
    for (let i = 0; i < cfg.n; i++) {
      const v = msgCount[i];
      if (!conns[i]?.joined) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const cpu = process.cpuUsage();
    const out = {
      ev: 'stats',
      t: Date.now(),
      n: cfg.n,
      joined,
      failures,
      refused,
      retries,
      dropped,
      serverCloses,
      errorFrames,
      errorSamples,
      pings,
      presenceFrames,
      presenceBytes,
      total,
      inWindow,
      buckets,
      lastMsgAt,
      perMemberMin: min === Infinity ? 0 : min,
      perMemberMax: max,
      cpuUs: cpu.user + cpu.system,
      cpuAtWindowUs: cpuAtWindow,
      rssBytes: process.memoryUsage().rss,
    };
    if (final) {
      out.samples = [...samples.entries()].map(([idx, s]) => ({
        loadProcess: cfg.procIndex,
        member: idx,
        position: idx === 0 ? 'first member opened by its load process' : 'last member opened by its load process',
        received: s.count,
        firstSeq: s.firstSeq,
        expectedFirstSeq: s.expectFirst,
        lastSeq: s.lastSeq,
        contiguousInOrder: s.count > 0 && s.gaps === 0 && s.outOfOrder === 0 && s.dups === 0 && s.badFirst === undefined && s.lastSeq - s.firstSeq + 1 === s.count,
        gaps: s.gaps,
        outOfOrder: s.outOfOrder,
        dups: s.dups,
        latencyMs: percentiles(s.lat, [50, 90, 99, 99.9]),
      }));
    }
    return out;
  }

  process.on('message', (m) => {
    if (m.cmd === 'open') {
      cfg = m;
      conns = new Array(cfg.n);
      msgCount = new Uint32Array(cfg.n);
      for (const i of cfg.sampleIdx ?? []) samples.set(i, { count: 0, lastSeq: -1, firstSeq: -1, gaps: 0, outOfOrder: 0, dups: 0, lat: [] });
      progressTimer = setInterval(() => send({ ev: 'progress', joined, failures, refused }), 1000);
      progressTimer.unref();
      pump();
    } else if (m.cmd === 'window') {
      win = { t0: m.t0, endAt: m.endAt };
      cpuAtWindow = { startUs: null, endUs: null };
      const cpuNow = () => {
        const c = process.cpuUsage();
        return c.user + c.system;
      };
      setTimeout(() => (cpuAtWindow.startUs = cpuNow()), Math.max(0, m.t0 - Date.now()));
      setTimeout(() => (cpuAtWindow.endUs = cpuNow()), Math.max(0, m.endAt - Date.now()));
    } else if (m.cmd === 'stats') {
      send(stats(m.final === true));
    } else if (m.cmd === 'close') {
      clearInterval(progressTimer);
      for (const c of conns) c?.sock?.destroy();
      setTimeout(() => process.exit(0), 200);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ───────────────────────────── role: publisher ─────────────────────────────

function runPublisher() {
  let cfg = null;
  let c = null;
  let inflight = 0;
  let nextId = 10;
  const sentAt = new Map();
  let sent = 0;
  let acked = 0;
  let ackedInWindow = 0;
  let errors = 0;
  const errorSamples = [];
  let ownMessages = 0;
  let t0 = 0;
  let endAt = 0;
  let running = false;
  let lastAckAt = 0;
  const ackLat = [];
  const ackBuckets = [];
  let prefix = '';
  let suffix = '';
  let cpuStart = 0;
  let cpuEnd = 0;

  const send = (m) => process.send(m);

  function fill(now) {
    if (!running) return;
    if (now >= endAt) {
      running = false;
      const cu = process.cpuUsage();
      cpuEnd = cu.user + cu.system;
      maybeDone();
      return;
    }
    if (inflight >= cfg.window) return;
    c.sock.cork();
    while (inflight < cfg.window) {
      const id = nextId++;
      sentAt.set(id, now);
      c.sock.write(clientFrame(prefix + id + suffix));
      inflight++;
      sent++;
    }
    c.sock.uncork();
  }

  function maybeDone() {
    if (running || inflight > 0 || t0 === 0) return;
    send({
      ev: 'done',
      t0,
      endAt,
      sent,
      acked,
      ackedInWindow,
      errors,
      errorSamples,
      ownMessages,
      lastAckAt,
      ackBuckets,
      ackLatencyMs: percentiles(ackLat, [50, 90, 99, 99.9]),
      cpuInWindowUs: cpuEnd - cpuStart,
    });
  }

  const h = {
    now: 0,
    onOpen(conn) {
      conn.send(`{"type":"connect","id":1,"user":"${cfg.user}"}`);
    },
    onRefused(conn, status) {
      send({ ev: 'fatal', error: `publisher upgrade refused: ${status}` });
    },
    onServerClose(conn, code) {
      send({ ev: 'fatal', error: `publisher closed by server: ${code}` });
    },
    onClose() {},
    onFrame(conn, op, buf, p, len) {
      if (op !== 1) return;
      const t = frameType(buf, p, len);
      if (t === 'message') ownMessages++;
      else if (t === 'ack' || t === 'error') {
        const f = JSON.parse(buf.toString('utf8', p, p + len));
        if (t === 'error') {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(f);
        }
        const at = sentAt.get(f.id);
        if (at === undefined) return;
        sentAt.delete(f.id);
        inflight--;
        if (t === 'ack') {
          acked++;
          const now = this.now;
          lastAckAt = now;
          ackLat.push(now - at);
          if (now < endAt) {
            ackedInWindow++;
            const b = Math.floor((now - t0) / 1000);
            ackBuckets[b] = (ackBuckets[b] ?? 0) + 1;
          }
        }
      } else if (t === 'ping') conn.send(PONG);
      else if (t === 'connected') conn.send(`{"type":"join","id":2,"room":"${cfg.room}"}`);
      else if (t === 'joined') send({ ev: 'ready' });
    },
  };

  const origOnFrames = RawWs.prototype.onFrames;
  RawWs.prototype.onFrames = function (chunk) {
    const now = Date.now();
    h.now = now;
    origOnFrames.call(this, chunk);
    if (running) fill(now);
    else maybeDone();
  };

  process.on('message', (m) => {
    if (m.cmd === 'open') {
      cfg = m;
      const data = JSON.stringify('x'.repeat(m.dataBytes - 2));
      prefix = '{"type":"publish","id":';
      suffix = `,"room":"${m.room}","data":${data}}`;
      c = new RawWs(0, h);
      c.start(m.port, m.localAddress);
    } else if (m.cmd === 'go') {
      endAt = m.endAt;
      setTimeout(() => {
        t0 = Date.now();
        const cu = process.cpuUsage();
        cpuStart = cu.user + cu.system;
        running = true;
        fill(t0);
        // Stop at endAt even if no ack arrives then.
        setTimeout(() => fill(Date.now()), Math.max(0, endAt - Date.now()));
      }, Math.max(0, m.t0 - Date.now()));
    } else if (m.cmd === 'close') {
      c?.sock?.destroy();
      setTimeout(() => process.exit(0), 100);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ───────────────────────────── role: floor (bare ws server) ─────────────────────────────

async function runFloor() {
  const { WebSocketServer } = await import('ws');
  const tiny = new Map();
  let nextId = 0;
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, clientTracking: false });
  wss.on('connection', (ws) => {
    const state = { id: ++nextId, user: '', room: '' };
    tiny.set(ws, state);
    ws.on('message', (data) => {
      let f;
      try {
        f = JSON.parse(data.toString('utf8'));
      } catch {
        return;
      }
      if (f.type === 'connect') {
        state.user = f.user;
        ws.send(JSON.stringify({ type: 'connected', id: f.id }));
      } else if (f.type === 'join') {
        state.room = f.room;
        ws.send(JSON.stringify({ type: 'joined', id: f.id, room: f.room, seq: 0 }));
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', () => tiny.delete(ws));
  });
  wss.on('listening', () => process.send({ ev: 'listening', port: wss.address().port }));
  process.on('message', (m) => {
    if (m.cmd === 'mem') {
      if (m.gc) globalThis.gc();
      process.send({ ev: 'mem', rss: process.memoryUsage().rss, heapUsed: v8.getHeapStatistics().used_heap_size, conns: tiny.size });
    } else if (m.cmd === 'close') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// ───────────────────────────── orchestrator ─────────────────────────────

function parseArgs(argv) {
  const o = {
    conns: 10000,
    procs: 4,
    rooms: 100,
    sameRoom: false,
    hotMembers: 1000,
    hotProcs: 2,
    duration: 10,
    window: 200,
    dataBytes: 100,
    settleS: 10,
    samples: 5,
    only: null,
    out: null,
    budgetS: 900,
    concurrency: 100,
    serverFlags: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--conns') o.conns = Number(v());
    else if (a === '--procs') o.procs = Number(v());
    else if (a === '--rooms') o.rooms = Number(v());
    else if (a === '--same-room') o.sameRoom = true;
    else if (a === '--hot-members') o.hotMembers = Number(v());
    else if (a === '--hot-procs') o.hotProcs = Number(v());
    else if (a === '--duration') o.duration = Number(v());
    else if (a === '--window') o.window = Number(v());
    else if (a === '--data-bytes') o.dataBytes = Number(v());
    else if (a === '--settle-s') o.settleS = Number(v());
    else if (a === '--samples') o.samples = Number(v());
    else if (a === '--only') o.only = v();
    else if (a === '--out') o.out = v();
    else if (a === '--budget-s') o.budgetS = Number(v());
    else if (a === '--concurrency') o.concurrency = Number(v());
    else if (a === '--server-flags') o.serverFlags = v().split(' ').filter(Boolean);
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const children = new Set();

function spawnPinned(core, args, opts = {}) {
  const child = spawn('taskset', ['-c', String(core), process.execPath, ...args], {
    cwd: ROOT,
    stdio: opts.stdio ?? ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function killChild(child, signal = 'SIGKILL') {
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function waitFor(child, pred, timeoutMs, what) {
  return new Promise((resolveP, rejectP) => {
    const timer = setTimeout(() => {
      child.off('message', onMsg);
      rejectP(new Error(`timeout waiting for ${what}`));
    }, timeoutMs);
    const onMsg = (m) => {
      if (m.ev === 'fatal') {
        clearTimeout(timer);
        child.off('message', onMsg);
        rejectP(new Error(m.error));
        return;
      }
      if (pred(m)) {
        clearTimeout(timer);
        child.off('message', onMsg);
        resolveP(m);
      }
    };
    child.on('message', onMsg);
  });
}

const request = (child, cmd, extra = {}) => {
  const p = waitFor(child, (m) => m.ev === 'stats', 30000, `stats from pid ${child.pid}`);
  child.send({ cmd, ...extra });
  return p;
};

/** Starts a Switchboard node on core 0 and waits for its "listening" log line. */
async function startSwitchboard(dataDir, extra, { inspect = false, flags = [] } = {}) {
  const nodeArgs = [...flags, ...(inspect ? ['--inspect=127.0.0.1:0'] : []), CLI, 'start', '--dev', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'info', ...extra];
  const child = spawnPinned(0, nodeArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let port = null;
  let inspector = null;
  const logLines = [];
  await new Promise((resolveP, rejectP) => {
    const timer = setTimeout(() => rejectP(new Error('switchboard did not print "listening" within 90 s')), 90000);
    const check = () => {
      if (port !== null && (!inspect || inspector !== null)) {
        clearTimeout(timer);
        resolveP();
      }
    };
    child.stdout.on('data', (d) => {
      out += d.toString();
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        try {
          const j = JSON.parse(line);
          if (j.msg === 'listening') port = j.port;
          if (j.level >= 40 && logLines.length < 50) logLines.push(line.slice(0, 400));
        } catch {
          /* not JSON */
        }
      }
      check();
    });
    child.stderr.on('data', (d) => {
      err += d.toString();
      const m = /Debugger listening on (ws:\/\/\S+)/.exec(err);
      if (m) inspector = m[1];
      check();
    });
    child.on('exit', (code) => rejectP(new Error(`switchboard exited early (${code}): ${err.slice(-2000)}`)));
  });
  return { child, pid: child.pid, port, inspector, logLines, stderr: () => err };
}

async function stopSwitchboard(node) {
  killChild(node.child, 'SIGTERM');
  const t = Date.now();
  while (node.child.exitCode === null && node.child.signalCode === null && Date.now() - t < 20000) await sleep(100);
  killChild(node.child, 'SIGKILL');
}

async function scrape(port) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  const m = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const mm = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!mm) continue;
    const labels = (mm[2] ?? '').replace(/,?node="[^"]*"/, '').replace(/^\{,?/, '{');
    const key = labels === '{}' || labels === '' ? mm[1] : mm[1] + labels;
    m[key] = Number(mm[3]);
  }
  return m;
}

/** Reads /proc/<pid>/stat utime+stime in seconds. */
function procCpuS(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** A DevTools-protocol session on the node's inspector, used only to force a full GC (HeapProfiler.collectGarbage). */
async function openInspector(url) {
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  let id = 0;
  const pending = new Map();
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.id !== undefined && pending.has(m.id)) {
      pending.get(m.id)(m);
      pending.delete(m.id);
    }
  });
  const call = (method, params = {}) =>
    new Promise((r) => {
      const i = ++id;
      pending.set(i, r);
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  return { call, close: () => ws.close() };
}

/** Median of `k` samples taken 1 s apart, plus the raw samples. */
async function sampleMedian(read, k) {
  const raw = [];
  for (let i = 0; i < k; i++) {
    if (i > 0) await sleep(1000);
    raw.push(await read());
  }
  return { rss: median(raw.map((r) => r.rss)), heapUsed: median(raw.map((r) => r.heapUsed)), samples: raw };
}

async function spawnClients(n, procs, common, perProc = () => ({})) {
  const gens = [];
  const per = Math.floor(n / procs);
  for (let k = 0; k < procs; k++) {
    const count = k === procs - 1 ? n - per * (procs - 1) : per;
    const child = spawnPinned(1, [SELF, 'clients']);
    gens.push({ child, count, k });
    child.send({ cmd: 'open', procIndex: k, n: count, localAddress: `127.0.0.${2 + k}`, userPrefix: `u${k}-`, roomOffset: k * per, ...common, ...perProc(k, count) });
  }
  return gens;
}

async function waitReady(gens, timeoutMs, label) {
  const t = Date.now();
  const readies = await Promise.all(gens.map((g) => waitFor(g.child, (m) => m.ev === 'ready', timeoutMs, `${label}: clients ready`)));
  const joined = readies.reduce((s, r) => s + r.joined, 0);
  const failures = readies.reduce((s, r) => s + r.failures, 0);
  const refused = readies.reduce((s, r) => s + r.refused, 0);
  return { joined, failures, refused, seconds: (Date.now() - t) / 1000 };
}

async function closeClients(gens) {
  for (const g of gens) {
    try {
      g.child.send({ cmd: 'close' });
    } catch {
      /* gone */
    }
  }
  const t = Date.now();
  while (gens.some((g) => g.child.exitCode === null && g.child.signalCode === null) && Date.now() - t < 10000) await sleep(100);
  for (const g of gens) killChild(g.child);
}

const KB = (bytes) => Math.round((bytes / 1024) * 100) / 100;
const MB = (bytes) => Math.round((bytes / 1048576) * 10) / 10;

function perConn(before, after, n) {
  return {
    rssPerConnKB: KB((after.rss - before.rss) / n),
    heapPerConnKB: KB((after.heapUsed - before.heapUsed) / n),
    rssBeforeMB: MB(before.rss),
    rssAfterMB: MB(after.rss),
    heapBeforeMB: MB(before.heapUsed),
    heapAfterMB: MB(after.heapUsed),
  };
}

/** Figure 1 for a Switchboard node; `room` set puts every connection in that one room. */
async function fig1Switchboard(o, template, { room } = {}) {
  const label = room === undefined ? `switchboard ${o.rooms} rooms` : `switchboard one room`;
  const dataDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-'));
  cpSync(template, dataDir, { recursive: true });
  const extra = ['--ping-interval-ms', '600000', '--admission-rate', '100000', '--admission-burst', '100000'];
  const node = await startSwitchboard(dataDir, extra, { inspect: true, flags: o.serverFlags });
  log(`${label}: node pid ${node.pid} port ${node.port}`);
  const insp = await openInspector(node.inspector);
  let gens = [];
  try {
    const read = async () => {
      const m = await scrape(node.port);
      return { rss: m.switchboard_process_resident_memory_bytes, heapUsed: m.switchboard_nodejs_heap_size_used_bytes };
    };
    const gcRead = async () => {
      await insp.call('HeapProfiler.collectGarbage');
      await sleep(500);
      await insp.call('HeapProfiler.collectGarbage');
      await sleep(1000);
      return read();
    };
    log(`${label}: settling ${o.settleS} s before the baseline`);
    await sleep(o.settleS * 1000);
    const before = await sampleMedian(read, o.samples);
    const beforeGc = await gcRead();
    log(`${label}: baseline rss ${MB(before.rss)} MB heap ${MB(before.heapUsed)} MB; opening ${o.conns} connections`);
    gens = await spawnClients(o.conns, o.procs, { port: node.port, rooms: o.rooms, concurrency: o.concurrency, ...(room !== undefined ? { room } : {}) });
    const ready = await waitReady(gens, 180000, label);
    const m0 = await scrape(node.port);
    log(`${label}: ${ready.joined} joined in ${ready.seconds} s (server connections ${m0.switchboard_connections}, memberships ${m0.switchboard_room_memberships}); settling ${o.settleS} s`);
    await sleep(o.settleS * 1000);
    const after = await sampleMedian(read, o.samples);
    const afterGc = await gcRead();
    const stats = await Promise.all(gens.map((g) => request(g.child, 'stats')));
    const m1 = await scrape(node.port);
    const n = ready.joined;
    return {
      what: label,
      connections: n,
      rooms: room === undefined ? o.rooms : 1,
      connectSeconds: ready.seconds,
      failures: ready.failures,
      refusedUpgrades: ready.refused,
      serverConnections: m1.switchboard_connections,
      serverRoomMemberships: m1.switchboard_room_memberships,
      droppedWhileIdle: stats.reduce((s, x) => s + x.dropped, 0),
      errorFrames: stats.reduce((s, x) => s + x.errorFrames, 0),
      presenceDiffFramesReceived: stats.reduce((s, x) => s + x.presenceFrames, 0),
      presenceDiffBytesReceived: stats.reduce((s, x) => s + x.presenceBytes, 0),
      settleMedian: { ...perConn(before, after, n), note: `median of ${o.samples} /metrics samples 1 s apart, after ${o.settleS} s settle, no forced GC` },
      afterForcedGc: { ...perConn(beforeGc, afterGc, n), note: 'single /metrics sample after two HeapProfiler.collectGarbage calls over the inspector (node started with --inspect)' },
      raw: { before, beforeGc, after, afterGc },
      notes: [
        'each connection: HTTP upgrade, connect with its own user id (so one user subscription and one presence record per connection), join one room; then idle (server pings every 600 s, so none during the test)',
        `node flags: ${extra.join(' ')} (admission raised so the connection ramp is not throttled; defaults otherwise); started with --inspect for the forced-GC reading`,
        'RSS and heap are the node process only; kernel socket buffers are not in RSS',
      ],
      warnLogs: node.logLines,
    };
  } finally {
    insp.close();
    await closeClients(gens);
    await stopSwitchboard(node);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function fig1Floor(o) {
  const label = 'floor: bare ws server';
  const child = spawnPinned(0, ['--expose-gc', SELF, 'floor']);
  let gens = [];
  try {
    const { port } = await waitFor(child, (m) => m.ev === 'listening', 30000, 'floor listening');
    log(`${label}: pid ${child.pid} port ${port}`);
    const mem = (gc) => {
      const p = waitFor(child, (m) => m.ev === 'mem', 30000, 'floor mem');
      child.send({ cmd: 'mem', gc });
      return p;
    };
    const read = () => mem(false);
    const gcRead = async () => {
      await mem(true);
      await sleep(500);
      await mem(true);
      await sleep(1000);
      return mem(false);
    };
    await sleep(o.settleS * 1000);
    const before = await sampleMedian(read, o.samples);
    const beforeGc = await gcRead();
    gens = await spawnClients(o.conns, o.procs, { port, rooms: o.rooms, concurrency: o.concurrency });
    const ready = await waitReady(gens, 180000, label);
    log(`${label}: ${ready.joined} joined in ${ready.seconds} s; settling ${o.settleS} s`);
    await sleep(o.settleS * 1000);
    const after = await sampleMedian(read, o.samples);
    const afterGc = await gcRead();
    const n = ready.joined;
    return {
      what: label,
      connections: n,
      serverConnections: afterGc.conns,
      connectSeconds: ready.seconds,
      failures: ready.failures,
      settleMedian: { ...perConn(before, after, n), note: `median of ${o.samples} samples (process.memoryUsage().rss, v8 used_heap_size) 1 s apart, after ${o.settleS} s settle, no forced GC` },
      afterForcedGc: { ...perConn(beforeGc, afterGc, n), note: 'single sample after two global.gc() calls (--expose-gc)' },
      raw: { before, beforeGc, after, afterGc },
    };
  } finally {
    await closeClients(gens);
    try {
      child.send({ cmd: 'close' });
    } catch {
      /* gone */
    }
    await sleep(300);
    killChild(child);
  }
}

async function fig2(o, template) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'sb-bench-'));
  cpSync(template, dataDir, { recursive: true });
  const node = await startSwitchboard(dataDir, [], { flags: o.serverFlags });
  log(`fig2: node pid ${node.pid} port ${node.port} (default config)`);
  let gens = [];
  let pub = null;
  try {
    const n = o.hotMembers;
    gens = await spawnClients(n, o.hotProcs, { port: node.port, room: 'hot', concurrency: o.concurrency }, (k, count) => ({ sampleIdx: [0, count - 1] }));
    const ready = await waitReady(gens, 120000, 'fig2');
    pub = spawnPinned(1, [SELF, 'publisher']);
    pub.send({ cmd: 'open', port: node.port, localAddress: `127.0.0.${2 + o.hotProcs}`, room: 'hot', user: 'publisher', dataBytes: o.dataBytes, window: o.window });
    await waitFor(pub, (m) => m.ev === 'ready', 30000, 'publisher joined');
    log(`fig2: ${ready.joined} members + publisher joined; letting presence diffs settle`);
    await sleep(2000);

    const t0 = Date.now() + 500;
    const endAt = t0 + o.duration * 1000;
    for (const g of gens) g.child.send({ cmd: 'window', t0, endAt });
    // Scrape just before t0 and right at endAt; /proc CPU at the same moments.
    await sleep(Math.max(0, t0 - 150 - Date.now()));
    const selfCpu0 = process.cpuUsage();
    const mBefore = await scrape(node.port);
    const mBeforeAt = Date.now();
    const procCpu0 = procCpuS(node.pid);
    const done = waitFor(pub, (m) => m.ev === 'done', o.duration * 1000 + 60000, 'publisher done');
    pub.send({ cmd: 'go', t0, endAt });
    const timeline = [];
    const poll = setInterval(async () => {
      try {
        const s = await Promise.all(gens.map((g) => request(g.child, 'stats')));
        timeline.push({ t: Date.now() - t0, delivered: s.reduce((a, x) => a + x.total, 0) });
      } catch {
        /* ignore */
      }
    }, 1000);
    await sleep(Math.max(0, endAt - Date.now()));
    const procCpu1 = procCpuS(node.pid);
    const procCpuAt1 = Date.now();
    const mAfter = await scrape(node.port);
    const mAfterAt = Date.now();
    clearInterval(poll);
    const selfCpu1 = process.cpuUsage(selfCpu0);
    const pubDone = await done;
    // Drain: wait until every member has every message acked (or counts stop moving for 3 s).
    const expected = pubDone.acked;
    let last = -1;
    let stableSince = Date.now();
    let drained;
    for (;;) {
      const s = await Promise.all(gens.map((g) => request(g.child, 'stats')));
      const tot = s.reduce((a, x) => a + x.total, 0);
      const minPer = Math.min(...s.map((x) => x.perMemberMin));
      if (minPer >= expected || Date.now() - stableSince > 3000) {
        drained = s;
        break;
      }
      if (tot !== last) {
        last = tot;
        stableSince = Date.now();
      }
      await sleep(250);
    }
    const mDrained = await scrape(node.port);
    const final = await Promise.all(gens.map((g) => request(g.child, 'stats', { final: true })));
    const durS = (endAt - t0) / 1000;
    const deliveredInWindow = final.reduce((a, x) => a + x.inWindow, 0);
    const deliveredTotal = final.reduce((a, x) => a + x.total, 0);
    const lastMsgAt = Math.max(...final.map((x) => x.lastMsgAt));
    const d = (k, a = mBefore, b = mAfter) => (b[k] ?? 0) - (a[k] ?? 0);
    const dDelivered = d('switchboard_messages_delivered_total');
    const dWrites = d('switchboard_socket_writes_total');
    const dCpu = d('switchboard_process_cpu_seconds_total');
    const scrapeSpanS = (mAfterAt - mBeforeAt) / 1000;
    const loadCpuWindowS = final.reduce((a, x) => a + ((x.cpuAtWindowUs?.endUs ?? 0) - (x.cpuAtWindowUs?.startUs ?? 0)), 0) / 1e6;
    void drained;
    return {
      what: `one room of ${n} members (+1 publisher member), window ${o.window}, ${o.dataBytes}-byte data, ${o.duration} s`,
      members: ready.joined,
      memberFailures: ready.failures,
      publisher: {
        sent: pubDone.sent,
        acked: pubDone.acked,
        ackedInWindow: pubDone.ackedInWindow,
        errors: pubDone.errors,
        errorSamples: pubDone.errorSamples,
        publishesAckedPerSec: Math.round(pubDone.ackedInWindow / durS),
        ackBucketsPerSecond: pubDone.ackBuckets,
        ackLatencyMs: pubDone.ackLatencyMs,
        ownMessageFramesReceived: pubDone.ownMessages,
        cpuSecondsInWindow: pubDone.cpuInWindowUs / 1e6,
      },
      deliveries: {
        inWindow: deliveredInWindow,
        perSecondInWindow: Math.round(deliveredInWindow / durS),
        perSecondBuckets: final.reduce((acc, x) => {
          x.buckets.forEach((v, i) => (acc[i] = (acc[i] ?? 0) + (v ?? 0)));
          return acc;
        }, []),
        total: deliveredTotal,
        expectedTotal: pubDone.acked * ready.joined,
        lastDeliveryAfterWindowEndMs: lastMsgAt - endAt,
        perSecondIncludingDrain: Math.round(deliveredTotal / ((lastMsgAt - t0) / 1000)),
        perMemberMin: Math.min(...final.map((x) => x.perMemberMin)),
        perMemberMax: Math.max(...final.map((x) => x.perMemberMax)),
        droppedMembers: final.reduce((a, x) => a + x.dropped, 0),
        serverCloses: final.map((x) => x.serverCloses),
        errorFrames: final.reduce((a, x) => a + x.errorFrames, 0),
        pingsAnswered: final.reduce((a, x) => a + x.pings, 0),
      },
      samples: final.flatMap((x) => x.samples),
      server: {
        cpuSecondsInWindow_metrics: Math.round(dCpu * 1000) / 1000,
        metricsScrapeSpanS: scrapeSpanS,
        cpuUtilisation_metrics: Math.round((dCpu / scrapeSpanS) * 1000) / 1000,
        cpuSecondsInWindow_proc: Math.round((procCpu1 - procCpu0) * 100) / 100,
        procSpanS: (procCpuAt1 - mBeforeAt) / 1000,
        deliveredDelta: dDelivered,
        socketWritesDelta: dWrites,
        deliveriesPerSocketWrite: Math.round((dDelivered / dWrites) * 100) / 100,
        deliveredPerCpuSecond: Math.round(dDelivered / dCpu),
        publishedDelta: d('switchboard_messages_published_total{source="ws"}'),
        deliveredDeltaThroughDrain: d('switchboard_messages_delivered_total', mBefore, mDrained),
        socketWritesDeltaThroughDrain: d('switchboard_socket_writes_total', mBefore, mDrained),
        slowConsumerDisconnects: mDrained.switchboard_slow_consumer_disconnects_total,
        eventLoopLagP99AtEnd_s: mAfter.switchboard_nodejs_eventloop_lag_p99_seconds,
        rssAfterMB: MB(mDrained.switchboard_process_resident_memory_bytes),
        historyLagMessagesAtEnd: mAfter.switchboard_history_lag_messages,
      },
      loadGenerators: {
        memberProcsCpuSecondsInWindow: Math.round(loadCpuWindowS * 100) / 100,
        publisherCpuSecondsInWindow: pubDone.cpuInWindowUs / 1e6,
        orchestratorCpuSecondsInWindow: Math.round(((selfCpu1.user + selfCpu1.system) / 1e6) * 100) / 100,
        core1UtilisationInWindow: Math.round(((loadCpuWindowS + pubDone.cpuInWindowUs / 1e6 + (selfCpu1.user + selfCpu1.system) / 1e6) / durS) * 1000) / 1000,
      },
      deliveryTimeline: timeline,
      notes: [
        `the room has ${ready.joined + 1} members on the server (the publisher is a member and gets its own messages); deliveries.* count only the ${ready.joined} listening members, server.deliveredDelta counts all`,
        'publishesAckedPerSec and deliveries.perSecondInWindow count acks / message frames received by the clients while Date.now() was inside [t0, t0 + duration)',
        'latency = client receive time (Date.now() once per TCP chunk) - message.ts; ts is set when the seq is assigned, before the durable-log batch; ms resolution; includes the time the client process (sharing core 1) takes to get to that socket',
        'server CPU: switchboard_process_cpu_seconds_total delta between a scrape just before t0 and one at t0 + duration; /proc/<pid>/stat utime+stime over about the same span as a cross-check',
        'deliveriesPerSocketWrite = delta switchboard_messages_delivered_total / delta switchboard_socket_writes_total over the window (acks and the publisher socket included in writes)',
      ],
      warnLogs: node.logLines,
    };
  } finally {
    if (pub !== null) {
      try {
        pub.send({ cmd: 'close' });
      } catch {
        /* gone */
      }
    }
    await closeClients(gens);
    if (pub !== null) killChild(pub);
    await stopSwitchboard(node);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** An initialised (initdb done, migrations applied) empty data directory, copied for each node. */
async function makeTemplate() {
  const dir = mkdtempSync(join(os.tmpdir(), 'sb-bench-template-'));
  const node = await startSwitchboard(dir, []);
  await stopSwitchboard(node);
  rmSync(join(dir, 'history.lock'), { force: true });
  return dir;
}

/** Newest modification time (ms) of the files under a directory. */
function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs);
  }
  return newest;
}

function setupInfo(o) {
  const sh = (cmd) => {
    try {
      return execFileSync('sh', ['-c', cmd], { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  };
  return {
    command: `node bench/core-figures.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    nproc: sh('nproc'),
    nprocAll: sh('nproc --all'),
    node: process.version,
    cpu: os.cpus()[0]?.model,
    kernel: os.release(),
    memTotalMB: Math.round(os.totalmem() / 1048576),
    openFilesLimit: sh('ulimit -n'),
    ephemeralPorts: sh('cat /proc/sys/net/ipv4/ip_local_port_range'),
    gitHead: sh('git rev-parse --short HEAD'),
    gitDirty: sh('git status --porcelain -- src | wc -l') !== '0',
    distBuiltAfterLastSrcChange: newestMtime(join(ROOT, 'dist')) >= newestMtime(join(ROOT, 'src')),
    pinning: 'servers (Switchboard node / floor) on core 0 via taskset -c 0; load generators, publisher and this orchestrator on core 1',
    loadGenerator: 'raw net sockets, minimal HTTP upgrade, masked client frames with random keys; server frames classified by the first bytes of their "type" value; source addresses 127.0.0.2.. (one per load process)',
    options: o,
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const setup = setupInfo(o); // before pinning: nproc honours the affinity mask
  // Pin this orchestrator (all threads) to core 1 with the load generators.
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  } catch {
    log('warning: could not pin the orchestrator to core 1');
  }
  const results = { setup, figure1: {}, figure2: null, errors: [] };
  const started = Date.now();
  const finish = (code) => {
    for (const c of children) killChild(c);
    results.elapsedS = Math.round((Date.now() - started) / 100) / 10;
    const text = JSON.stringify(results, null, 2);
    process.stdout.write(`${text}\n`);
    if (o.out) writeFileSync(o.out, `${text}\n`);
    process.exit(code);
  };
  const budget = setTimeout(() => {
    results.errors.push(`budget of ${o.budgetS} s exhausted; partial results`);
    finish(3);
  }, o.budgetS * 1000);
  process.on('SIGINT', () => {
    results.errors.push('interrupted');
    finish(130);
  });

  let template = null;
  try {
    log('preparing an initialised data directory (initdb once, copied for each node)');
    template = await makeTemplate();
    const run = async (name, fn) => {
      try {
        return await fn();
      } catch (err) {
        log(`${name} failed: ${err.stack ?? err}`);
        results.errors.push(`${name}: ${err.message}`);
        return null;
      }
    };
    const parts = o.only !== null ? o.only.split(',') : ['fig1', ...(o.sameRoom ? ['fig1-one-room'] : []), 'fig2'];
    if (parts.includes('fig1')) {
      results.figure1.switchboard = await run('fig1 switchboard', () => fig1Switchboard(o, template));
      results.figure1.floor = await run('fig1 floor', () => fig1Floor(o));
      const sb = results.figure1.switchboard;
      const fl = results.figure1.floor;
      if (sb && fl) {
        const ratio = (a, b) => Math.round((a / b) * 100) / 100;
        results.figure1.ratio = {
          rssSettle: ratio(sb.settleMedian.rssPerConnKB, fl.settleMedian.rssPerConnKB),
          heapSettle: ratio(sb.settleMedian.heapPerConnKB, fl.settleMedian.heapPerConnKB),
          rssForcedGc: ratio(sb.afterForcedGc.rssPerConnKB, fl.afterForcedGc.rssPerConnKB),
          heapForcedGc: ratio(sb.afterForcedGc.heapPerConnKB, fl.afterForcedGc.heapPerConnKB),
          note: 'switchboard per-connection figure / floor per-connection figure',
        };
      }
    }
    if (parts.includes('fig1-one-room')) results.figure1.switchboardOneRoom = await run('fig1 one room', () => fig1Switchboard(o, template, { room: 'all' }));
    if (parts.includes('fig2')) results.figure2 = await run('fig2', () => fig2(o, template));
  } finally {
    clearTimeout(budget);
    if (template !== null) rmSync(template, { recursive: true, force: true });
  }
  finish(results.errors.length > 0 ? 1 : 0);
}

if (role === 'clients') runClients();
else if (role === 'publisher') runPublisher();
else if (role === 'floor') await runFloor();
else await main();
