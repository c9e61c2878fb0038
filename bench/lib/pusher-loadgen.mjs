#!/usr/bin/env node
/**
 * A Pusher-shaped load-generator process (child of bench/run.mjs, driven over IPC with the same commands and
 * answers as loadgen.mjs, so load.mjs and measure.mjs drive it unchanged). Roles, chosen by `open`:
 *
 * - `members`: `n` raw WebSocket clients from one loopback source address that behave as pusher-js 8 does on
 *   its WebSocket transport: connect to `/app/<key>?protocol=7&client=js&version=8.6.0&flash=false`, wait for
 *   `pusher:connection_established`, `pusher:subscribe` to a public channel (`auth: ""`), and count the
 *   channel's events once `pusher_internal:subscription_succeeded` arrived; answer `pusher:ping` with
 *   `pusher:pong`, and send `pusher:ping` themselves after `activity_timeout` without traffic (pusher-js's
 *   activity check). Each member checks the order of every publishing stream (`S<stream>.<n>` in the data).
 * - `publisher`: publishes through the system's HTTP API, `POST /apps/<id>/events` signed with the app
 *   secret, over `streams` keep-alive connections, one request in flight per connection (so each stream's
 *   order is defined), flat out (`mode: 'flat'`) or `rate` per second on stream 0 (`mode: 'rate'`). With
 *   `api: 'v1'`, Switchboard's `POST /api/publish` (same room, event and data) instead.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { RawWs } from './raw-ws.mjs';
import {
  benchData,
  benchDataOf,
  PUSHER_PING_FRAME,
  PUSHER_PONG_FRAME,
  pusherFrameKind,
  pusherPath,
  signedQuery,
  StreamSeqs,
  v1BenchData,
} from './pusher-frames.mjs';
import { percentiles } from './stats.mjs';

const nowMs = () => performance.timeOrigin + performance.now();
const send = (m) => process.send?.(m);
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

let cfg = null;
let chunkNow = nowMs();
const origOnFrames = RawWs.prototype.onFrames;
RawWs.prototype.onFrames = function (chunk) {
  chunkNow = nowMs();
  this.lastRecv = chunkNow;
  origOnFrames.call(this, chunk);
};

// ───────────────────────────── members ─────────────────────────────

function runMembers() {
  const n = cfg.n;
  const conns = new Array(n);
  const counts = new Uint32Array(n);
  const seqs = new StreamSeqs(n, cfg.streams);
  const lat = [];
  let joined = 0;
  let failures = 0;
  let refused = 0;
  let dropped = 0;
  let errors = 0;
  let errorSample = null;
  let total = 0;
  let inWindow = 0;
  let win = null;
  let inflight = 0;
  let next = 0;
  let readySent = false;
  let pingsSent = 0;
  let pongsSent = 0;
  let activityMs = 120000;
  const t0 = nowMs();
  let lastJoinAt = 0;
  const path = pusherPath(cfg.key);
  const channelOf = (i) => (cfg.rooms > 1 ? `${cfg.room}${(cfg.roomOffset + i) % cfg.rooms}` : cfg.room);

  const h = {
    onOpen: () => undefined,
    onRefused(c, _status, retryAfterS) {
      refused++;
      c.retryAfterS = retryAfterS;
    },
    onClose(c) {
      if (c.joined) {
        dropped++;
        return;
      }
      inflight--;
      c.attempts = (c.attempts ?? 0) + 1;
      if (c.attempts > 8) {
        failures++;
        pump();
        return;
      }
      const again = new RawWs(c.idx, h);
      again.attempts = c.attempts;
      conns[c.idx] = again;
      inflight++;
      setTimeout(() => again.start(cfg.port, cfg.localAddress, path), (c.retryAfterS ?? 1) * 1000);
    },
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const kind = pusherFrameKind(buf, p, len, cfg.event);
      if (kind === 'message') {
        if (!c.joined) return;
        const i = c.idx;
        counts[i]++;
        total++;
        if (win !== null && chunkNow >= win.t0 && chunkNow < win.endAt) inWindow++;
        const sampled = i % cfg.sampleEvery === 0;
        const d = benchDataOf(buf, p, len, sampled);
        if (d === null) {
          errors++;
          return;
        }
        if (d.stream >= 0) seqs.add(i, d.stream, d.n);
        if (sampled && Number.isFinite(d.at) && (win === null || (d.at >= win.t0 - 50 && d.at < win.endAt + 50))) lat.push(chunkNow - d.at);
      } else if (kind === 'established') {
        const text = buf.toString('utf8', p, p + len);
        const m = /activity_timeout\\?":\s*(\d+)/.exec(text);
        if (m !== null) activityMs = Math.min(120000, Number(m[1]) * 1000);
        c.send(JSON.stringify({ event: 'pusher:subscribe', data: { auth: '', channel: channelOf(c.idx) } }));
      } else if (kind === 'subscribed') {
        if (c.joined) return;
        c.joined = true;
        joined++;
        inflight--;
        lastJoinAt = chunkNow;
        pump();
      } else if (kind === 'ping') {
        c.send(PUSHER_PONG_FRAME);
        pongsSent++;
      } else if (kind === 'pong') {
        c.pingAt = 0;
      } else if (kind === 'error' || kind === 'subError') {
        errors++;
        if (errorSample === null) errorSample = buf.toString('utf8', p, p + Math.min(len, 300));
      }
    },
  };

  function pump() {
    while (inflight < cfg.concurrency && next < n) {
      const c = new RawWs(next, h);
      conns[next++] = c;
      inflight++;
      c.start(cfg.port, cfg.localAddress, path);
    }
    if (!readySent && joined + failures >= n) {
      readySent = true;
      send({ ev: 'ready', joined, failures, refused, seconds: (lastJoinAt - t0) / 1000, errorSample });
    }
  }

  // pusher-js's activity check: a ping after activity_timeout without anything received.
  setInterval(() => {
    const now = nowMs();
    for (const c of conns) {
      if (c === undefined || !c.open || (c.pingAt ?? 0) > 0) continue;
      if (now - (c.lastRecv ?? now) > activityMs) {
        c.pingAt = now;
        c.lastRecv = now;
        c.send(PUSHER_PING_FRAME);
        pingsSent++;
      }
    }
  }, 1000).unref();

  const stats = (expect) => {
    let min = Infinity;
    let short = 0;
    let over = 0;
    for (let i = 0; i < n; i++) {
      if (!conns[i]?.joined) continue;
      if (counts[i] < min) min = counts[i];
      if (expect !== undefined) {
        if (counts[i] < expect) short += expect - counts[i];
        else over += counts[i] - expect;
      }
    }
    return {
      ev: 'stats',
      n,
      joined,
      failures,
      refused,
      dropped,
      errors,
      errorSample,
      total,
      inWindow,
      perMemberMin: min === Infinity ? 0 : min,
      short,
      over,
      seq: seqs.summary(),
      pingsSent,
      pongsSent,
      cpuUs: cpuUs(),
    };
  };
  process.on('message', (m) => {
    if (m.cmd === 'window') {
      win = { t0: m.t0, endAt: m.endAt };
      lat.length = 0;
      inWindow = 0;
    } else if (m.cmd === 'reset') {
      total = 0;
      inWindow = 0;
      lat.length = 0;
      counts.fill(0);
      seqs.reset();
      win = null;
      send({ ev: 'reset' });
    } else if (m.cmd === 'stats') send(stats(m.expect));
    else if (m.cmd === 'latency') send({ ev: 'latency', lat });
  });
  pump();
}

// ───────────────────────────── publisher (HTTP API) ─────────────────────────────

function runPublisher() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.streams, localAddress: cfg.localAddress });
  // `api: 'v1'`: Switchboard's own POST /api/publish (open in --dev) instead of Pusher's signed trigger.
  const v1 = cfg.api === 'v1';
  const path = v1 ? '/api/publish' : `/apps/${cfg.appId}/events`;
  const target = (body) => (v1 ? path : `${path}?${signedQuery({ key: cfg.key, secret: cfg.secret, method: 'POST', path, body })}`);
  const trigger = (event, room, data) => JSON.stringify(v1 ? { room, event, data } : { name: event, channel: room, data });
  const streams = cfg.mode === 'flat' ? cfg.streams : 1;
  const nextN = new Array(streams).fill(1);
  let sent = 0;
  let acked = 0;
  let errors = 0;
  let errorSample = null;
  let running = false;
  let endAt = 0;
  let t0 = 0;
  let inflight = 0;
  const ackLat = [];

  /** One signed POST; resolves true on 200. */
  const post = (stream, at) =>
    new Promise((resolve) => {
      const body = trigger(cfg.event, cfg.room, (v1 ? v1BenchData : benchData)(stream, nextN[stream]++, at, cfg.dataBytes));
      const req = http.request(
        {
          host: '127.0.0.1',
          port: cfg.port,
          method: 'POST',
          path: target(body),
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => {
            if (res.statusCode === 200) resolve(true);
            else {
              if (errorSample === null) errorSample = `${res.statusCode} ${text.slice(0, 200)}`;
              resolve(false);
            }
          });
        },
      );
      req.on('error', (e) => {
        if (errorSample === null) errorSample = String(e.message);
        resolve(false);
      });
      req.end(body);
    });

  const one = async (stream) => {
    const at = nowMs();
    sent++;
    inflight++;
    const ok = await post(stream, at);
    inflight--;
    if (ok) {
      acked++;
      ackLat.push(nowMs() - at);
    } else errors++;
  };
  const done = () => send({ ev: 'done', t0, endAt, sent, acked, errors, errorSample, ackLatencyMs: percentiles(ackLat, [50, 99]) });

  const flat = async (stream) => {
    while (running && nowMs() < endAt) await one(stream);
  };
  const rate = async () => {
    // Evenly spaced from t0, one stream: a slow answer delays the next, which then catches up.
    let k = 0;
    while (nowMs() < endAt) {
      const due = Math.floor(((nowMs() - t0) / 1000) * cfg.rate) + 1;
      while (k < due && nowMs() < endAt) {
        await one(0);
        k++;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, t0 + (k / cfg.rate) * 1000 - nowMs())));
    }
  };

  process.on('message', (m) => {
    if (m.cmd !== 'go') return;
    endAt = m.endAt;
    setTimeout(
      () => {
        t0 = nowMs();
        running = true;
        const work = cfg.mode === 'flat' ? Array.from({ length: streams }, (_, s) => flat(s)) : [rate()];
        void Promise.all(work).then(() => {
          running = false;
          done();
        });
      },
      Math.max(0, m.t0 - nowMs()),
    );
  });
  // Warm the keep-alive connections (and check the signature) before reporting ready.
  void (async () => {
    const body = trigger('bench-warmup', `${cfg.room}-warmup`, 'w');
    const warm = await Promise.all(
      Array.from(
        { length: streams },
        () =>
          new Promise((resolve) => {
            const req = http.request(
              { host: '127.0.0.1', port: cfg.port, method: 'POST', path: target(body), agent, headers: { 'content-type': 'application/json' } },
              (res) => {
                let text = '';
                res.on('data', (d) => (text += d));
                res.on('end', () => resolve(res.statusCode === 200 ? null : `${res.statusCode} ${text.slice(0, 200)}`));
              },
            );
            req.on('error', (e) => resolve(String(e.message)));
            req.end(body);
          }),
      ),
    );
    const bad = warm.find((w) => w !== null);
    if (bad !== undefined) send({ ev: 'fatal', error: `publisher: HTTP API refused a signed trigger: ${bad}` });
    else send({ ev: 'ready', inflight });
  })();
}

process.on('message', (m) => {
  if (m.cmd === 'open') {
    cfg = { concurrency: 100, rooms: 1, roomOffset: 0, sampleEvery: 10, streams: 1, event: 'bench', dataBytes: 100, ...m };
    if (cfg.role === 'members') runMembers();
    else if (cfg.role === 'publisher') runPublisher();
    else send({ ev: 'fatal', error: `pusher load generator: unknown role ${cfg.role}` });
  } else if (m.cmd === 'close') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
