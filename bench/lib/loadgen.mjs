#!/usr/bin/env node
/**
 * A load-generator process (child of bench/run.mjs, driven over IPC). Roles, chosen by the `open` command:
 *
 * - `members`: opens `n` connections from one loopback source address, each connected and joined to a
 *   room, then counts `message` frames per member (by their leading bytes, without parsing). Every member
 *   checks seq order cheaply (last seq per member: duplicates, reordering, gaps); every `sampleEvery`-th
 *   member also records publish → receive latency from the publisher's timestamp in the data.
 * - `publisher`: one connection that joins the room and publishes `dataBytes`-byte strings starting with
 *   `T<publisher wall clock ms>|`, either keeping `window` publishes in flight (`mode: 'flat'`) or at
 *   `rate` per second (`mode: 'rate'`), for `durationMs`.
 * - `storm`: like `members`, but SDK-like on loss: reconnects with the SDK's backoff (full jitter, or the
 *   bare window with jitter off), re-joins with `since` = its last seq and dedupes by seq, so missed
 *   messages are recovered; reports reconnect times and handshakes per 100 ms.
 *
 * Protocols: `sb` (Switchboard's JSON frames; the `ws` floor speaks the same subset) and `sio` (engine.io 4
 * + socket.io 5 packets over a raw WebSocket: `0` open → `40`, `2` ping → `3`, `42[..]` events, `43<id>[..]`
 * acks). Times are `performance.timeOrigin + performance.now()`, taken once per TCP chunk.
 */
import { performance } from 'node:perf_hooks';
import { clientFrame, frameType, PONG, RawWs } from './raw-ws.mjs';
import { MemberSeqs, SeqTracker, percentiles } from './stats.mjs';

const nowMs = () => performance.timeOrigin + performance.now();
const send = (m) => process.send?.(m);

let cfg = null;
let chunkNow = nowMs();
const origOnFrames = RawWs.prototype.onFrames;
RawWs.prototype.onFrames = function (chunk) {
  chunkNow = nowMs();
  origOnFrames.call(this, chunk);
  afterChunk?.();
};
let afterChunk = null;

const PATH = { sb: '/ws', sio: '/socket.io/?EIO=4&transport=websocket' };

/** Reads an unsigned integer written in ASCII at buf[i..]. */
function readInt(buf, i, end) {
  let v = 0;
  for (; i < end; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return v;
}
const SEQ = Buffer.from('"seq":');
const DATA_T = Buffer.from('"data":"T');
function seqOf(buf, p, len) {
  const i = buf.indexOf(SEQ, p);
  return i < 0 || i >= p + len ? -1 : readInt(buf, i + 6, p + len);
}
function sentAtOf(buf, p, len) {
  const i = buf.indexOf(DATA_T, p);
  if (i < 0 || i >= p + len) return null;
  const j = buf.indexOf(0x7c, i); // '|'
  return Number(buf.toString('latin1', i + 9, j));
}

/** Classifies one text frame as a protocol event, answering pings and handshake steps itself. */
function classify(c, buf, p, len) {
  if (cfg.proto === 'sb') {
    const t = frameType(buf, p, len);
    if (t === 'ping') c.send(PONG);
    else if (t === 'connected') c.send(joinFrame(c));
    return t;
  }
  const b0 = buf[p];
  if (b0 === 0x34) {
    const b1 = buf[p + 1];
    if (b1 === 0x32 && buf[p + 4] === 0x6d) return 'message'; // 42["message",...
    if (b1 === 0x33) return 'ack'; // 43<id>[...]
    if (b1 === 0x30) {
      c.send(joinFrame(c)); // 40{"sid":...}: namespace connected
      return 'connected';
    }
    if (b1 === 0x34) return 'error';
    return '?';
  }
  if (b0 === 0x32)
    c.send('3'); // engine.io ping → pong
  else if (b0 === 0x30) c.send('40'); // engine.io open → connect to "/"
  return '?';
}

/** The join request; for sio, ack id 1 marks it, answered by `431[...]`. */
function joinFrame(c) {
  if (cfg.proto === 'sb') {
    const since = c.since !== undefined ? `,"since":${JSON.stringify(c.since)}` : '';
    return `{"type":"join","id":2,"room":"${c.room}"${since}}`;
  }
  return `421["join","${c.room}"]`;
}

function onOpenCommon(c) {
  if (cfg.proto === 'sb') c.send(`{"type":"connect","id":1,"user":"${cfg.userPrefix}${c.idx}"}`);
}

// ───────────────────────────── members ─────────────────────────────

function runMembers() {
  const n = cfg.n;
  const conns = new Array(n);
  const counts = new Uint32Array(n);
  const seqs = new MemberSeqs(n);
  const lat = [];
  let joined = 0;
  let failures = 0;
  let refused = 0;
  let dropped = 0;
  let errors = 0;
  let total = 0;
  let inWindow = 0;
  let win = null;
  let lastMsgAt = 0;
  let inflight = 0;
  let next = 0;
  let readySent = false;
  const t0 = nowMs();
  let lastJoinAt = 0;

  const roomOf = (i) => (cfg.rooms > 1 ? `${cfg.room}${(cfg.roomOffset + i) % cfg.rooms}` : cfg.room);
  const h = {
    onOpen: onOpenCommon,
    onRefused(c, status, retryAfterS) {
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
      again.room = c.room;
      again.attempts = c.attempts;
      conns[c.idx] = again;
      inflight++;
      setTimeout(() => again.start(cfg.port, cfg.localAddress, PATH[cfg.proto]), (c.retryAfterS ?? 1) * 1000);
    },
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const t = classify(c, buf, p, len);
      if (t === 'message') {
        const i = c.idx;
        counts[i]++;
        total++;
        lastMsgAt = chunkNow;
        if (win !== null && chunkNow >= win.t0 && chunkNow < win.endAt) inWindow++;
        if (cfg.seqCheck) seqs.add(i, seqOf(buf, p, len));
        if (i % cfg.sampleEvery === 0) {
          const at = sentAtOf(buf, p, len);
          // 50 ms of slack: publishers only publish inside the window, and their clock (timeOrigin + now) may
          // differ from the orchestrator's Date.now() by a little.
          if (at !== null && (win === null || (at >= win.t0 - 50 && at < win.endAt + 50))) lat.push(chunkNow - at);
        }
      } else if (t === 'joined' || (t === 'ack' && !c.joined)) {
        if (c.joined) return;
        c.joined = true;
        joined++;
        inflight--;
        lastJoinAt = chunkNow;
        pump();
      } else if (t === 'error') errors++;
    },
  };

  function pump() {
    while (inflight < cfg.concurrency && next < n) {
      const c = new RawWs(next, h);
      c.room = roomOf(next);
      conns[next++] = c;
      inflight++;
      c.start(cfg.port, cfg.localAddress, PATH[cfg.proto]);
    }
    if (!readySent && joined + failures >= n) {
      readySent = true;
      send({ ev: 'ready', joined, failures, refused, seconds: (lastJoinAt - t0) / 1000 });
    }
  }

  // With `expect` (messages every member should have), `short` is the sum over joined members of what each
  // still lacks and `over` of what each has beyond it: one member's extra never hides another's loss.
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
      total,
      inWindow,
      lastMsgAt,
      perMemberMin: min === Infinity ? 0 : min,
      short,
      over,
      seq: seqs.summary(),
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

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

// ───────────────────────────── publisher ─────────────────────────────

function runPublisher() {
  const pad = 'x'.repeat(Math.max(0, cfg.dataBytes - 20));
  let nextId = 10;
  let inflight = 0;
  let sent = 0;
  let acked = 0;
  let errors = 0;
  let lastSeq = 0;
  const lastSeqByRoom = {};
  let joins = 0;
  let errorSample = null;
  let running = false;
  let endAt = 0;
  let t0 = 0;
  const sentAt = new Map();
  const ackLat = [];
  let c = null;

  const payload = (id, at) => {
    const data = `T${at.toFixed(3)}|${pad}`;
    // With rooms > 1 (Switchboard protocol only), publishes go round-robin over room0 … room<rooms-1>.
    const room = cfg.rooms > 1 ? `${cfg.room}${sent % cfg.rooms}` : cfg.room;
    return cfg.proto === 'sb' ? `{"type":"publish","id":${id},"room":"${room}","data":"${data}"}` : `42${id}["publish",{"room":"${room}","data":"${data}"}]`;
  };
  const publishOne = (at) => {
    const id = nextId++;
    sentAt.set(id, at);
    c.sock.write(clientFrame(payload(id, at)));
    inflight++;
    sent++;
  };
  const fill = () => {
    if (!running) return;
    const at = nowMs();
    if (at >= endAt) return stop();
    if (cfg.mode !== 'flat' || inflight >= cfg.window) return;
    c.sock.cork();
    while (inflight < cfg.window) publishOne(at);
    c.sock.uncork();
  };
  const stop = () => {
    if (!running) return;
    running = false;
    maybeDone();
  };
  const maybeDone = () => {
    if (running || inflight > 0 || t0 === 0) return;
    send({ ev: 'done', t0, endAt, sent, acked, errors, errorSample, lastSeq, lastSeqByRoom, ackLatencyMs: percentiles(ackLat, [50, 99]) });
    t0 = 0;
  };
  afterChunk = () => (running ? fill() : maybeDone());

  const h = {
    onOpen: onOpenCommon,
    onRefused: (_c, status) => send({ ev: 'fatal', error: `publisher refused: ${status}` }),
    onClose: () => undefined,
    onFrame(conn, op, buf, p, len) {
      if (op !== 1) return;
      const t = classify(conn, buf, p, len);
      if (t === 'ack' || t === 'error') {
        let id;
        if (cfg.proto === 'sb') {
          const f = JSON.parse(buf.toString('utf8', p, p + len));
          id = f.id;
          if (t === 'ack' && (lastSeqByRoom[f.room] ?? 0) < f.seq) lastSeqByRoom[f.room] = f.seq;
          if (t === 'error' && errorSample === null) errorSample = f;
        } else id = readInt(buf, p + 2, p + len);
        if (id === 1 || id === 2) {
          if (!conn.joined) {
            conn.joined = true;
            send({ ev: 'ready' });
          }
          return;
        }
        const at = sentAt.get(id);
        if (at === undefined) return;
        sentAt.delete(id);
        inflight--;
        if (t === 'ack') {
          const seq = seqOf(buf, p, len);
          if (seq > lastSeq) lastSeq = seq;
          acked++;
          ackLat.push(chunkNow - at);
        } else errors++;
      } else if (t === 'connected' && cfg.rooms > 1) {
        for (let k = 1; k < cfg.rooms; k++) conn.send(`{"type":"join","id":${1000 + k},"room":"${cfg.room}${k}"}`);
      } else if (t === 'joined' && !conn.joined && ++joins >= cfg.rooms) {
        conn.joined = true;
        send({ ev: 'ready' });
      }
    },
  };
  c = new RawWs(0, h);
  c.room = cfg.rooms > 1 ? `${cfg.room}0` : cfg.room;
  c.start(cfg.port, cfg.localAddress, PATH[cfg.proto]);

  process.on('message', (m) => {
    if (m.cmd !== 'go') return;
    endAt = m.endAt;
    setTimeout(
      () => {
        t0 = nowMs();
        running = true;
        if (cfg.mode === 'flat') fill();
        else {
          // Fixed rate: publish at evenly spaced instants from t0; catch up if the timer fires late.
          let k = 0;
          const tick = () => {
            if (!running) return;
            const now = nowMs();
            if (now >= endAt) return stop();
            const due = Math.floor(((now - t0) / 1000) * cfg.rate) + 1;
            while (k < due) {
              publishOne(now);
              k++;
            }
            setTimeout(tick, Math.max(1, t0 + (k / cfg.rate) * 1000 - nowMs()));
          };
          tick();
        }
        setTimeout(() => (running ? (fill(), stop()) : undefined), Math.max(0, endAt - nowMs()) + 5);
      },
      Math.max(0, m.t0 - nowMs()),
    );
  });
}

// ───────────────────────────── storm (SDK-like reconnecting members) ─────────────────────────────

async function runStorm() {
  const { backoffDelay, backoffWindow, defaultBackoff } = await import(cfg.backoffModule);
  const backoff = cfg.backoff ?? defaultBackoff;
  const n = cfg.n;
  const conns = new Array(n);
  const trackers = Array.from({ length: n }, () => new SeqTracker(1));
  const lastSeq = new Int32Array(n);
  const epoch = new Array(n);
  const attempts = new Uint16Array(n);
  const downAt = new Float64Array(n);
  const backAt = new Float64Array(n);
  const ready = new Uint8Array(n);
  let joined = 0;
  let everJoined = 0;
  let refused = 0;
  let handshakes = 0;
  const hsBuckets = new Map(); // 100 ms bucket → upgrades answered 101
  let inflight = 0;
  let next = 0;
  let readySent = false;

  const h = {
    onOpen(c) {
      handshakes++;
      const b = Math.floor(chunkNow / 100);
      hsBuckets.set(b, (hsBuckets.get(b) ?? 0) + 1);
      onOpenCommon(c);
    },
    onRefused(c, _status, retryAfterS) {
      refused++;
      c.retryAfterS = retryAfterS;
    },
    onClose(c) {
      const i = c.idx;
      if (conns[i] !== c) return;
      if (c.joined) {
        joined--;
        if (downAt[i] === 0) downAt[i] = nowMs();
      }
      attempts[i]++;
      const delay = cfg.jitter ? backoffDelay(attempts[i], backoff) : backoffWindow(attempts[i], backoff);
      const again = new RawWs(i, h);
      again.room = c.room;
      // Like the SDK: once joined, the position (joined seq, then each message's) is resumed with since.
      if (epoch[i] !== undefined) again.since = { seq: lastSeq[i], epoch: epoch[i] };
      conns[i] = again;
      setTimeout(() => again.start(cfg.port, cfg.localAddress, PATH.sb), delay);
    },
    onFrame(c, op, buf, p, len) {
      if (op !== 1) return;
      const t = classify(c, buf, p, len);
      const i = c.idx;
      if (t === 'message') {
        const s = seqOf(buf, p, len);
        trackers[i].add(s);
        if (s > lastSeq[i]) lastSeq[i] = s;
      } else if (t === 'joined') {
        if (c.joined) return;
        const f = JSON.parse(buf.toString('utf8', p, p + len));
        if (epoch[i] === undefined) {
          // First join: the stream starts after the joined position.
          trackers[i].expectFirst = f.seq + 1;
          lastSeq[i] = f.seq;
        }
        epoch[i] = f.epoch;
        c.joined = true;
        joined++;
        attempts[i] = 0;
        if (downAt[i] > 0) backAt[i] = chunkNow;
        if (ready[i] === 0) {
          ready[i] = 1;
          everJoined++;
          inflight--;
          pump();
        }
      } else if (t === 'error' && !c.joined) {
        // e.g. history gone: rejoin without since would lose messages; report it.
        c.joinError = buf.toString('utf8', p, p + Math.min(len, 300));
      }
    },
  };

  function pump() {
    while (inflight < cfg.concurrency && next < n) {
      const c = new RawWs(next, h);
      c.room = cfg.rooms > 1 ? `${cfg.room}${(cfg.roomOffset + next) % cfg.rooms}` : cfg.room;
      conns[next++] = c;
      inflight++;
      c.start(cfg.port, cfg.localAddress, PATH.sb);
    }
    if (!readySent && everJoined >= n) {
      readySent = true;
      send({ ev: 'ready', joined });
    }
  }
  process.on('message', (m) => {
    if (m.cmd === 'stats') {
      const byRoom = m.lastSeqByRoom ?? {};
      let lost = 0;
      let dups = 0;
      let outOfOrder = 0;
      let behind = 0;
      let lastBack = 0;
      for (let i = 0; i < n; i++) {
        const s = trackers[i];
        const lastExpected = byRoom[conns[i].room] ?? m.lastSeq;
        if (lastExpected !== undefined) lost += s.missing(lastExpected);
        dups += s.dups;
        outOfOrder += s.outOfOrder;
        if (lastExpected !== undefined && lastSeq[i] < lastExpected) behind++;
        if (backAt[i] > lastBack) lastBack = backAt[i];
      }
      send({ ev: 'stats', n, joined, refused, handshakes, lost, dups, outOfOrder, behind, lastBackAt: lastBack, hsPer100ms: [...hsBuckets.entries()] });
    } else if (m.cmd === 'resetHs') {
      downAt.fill(0);
      backAt.fill(0);
      hsBuckets.clear();
      handshakes = 0;
      refused = 0;
      send({ ev: 'reset' });
    }
  });
  pump();
}

process.on('message', (m) => {
  if (m.cmd === 'open') {
    cfg = { proto: 'sb', concurrency: 100, rooms: 1, roomOffset: 0, sampleEvery: 10, seqCheck: true, userPrefix: 'u', ...m };
    if (cfg.role === 'members') runMembers();
    else if (cfg.role === 'publisher') runPublisher();
    else if (cfg.role === 'storm') runStorm().catch((e) => send({ ev: 'fatal', error: String(e?.stack ?? e) }));
  } else if (m.cmd === 'close') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
