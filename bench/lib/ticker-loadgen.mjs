#!/usr/bin/env node
/**
 * The `ticker` scenario's load generator (child of bench/run.mjs, driven over IPC like loadgen.mjs: `open`,
 * `ready`, `window`, `reset`, `stats`, `latency`, `close`). Roles, chosen by `open`:
 *
 * - `members`: `n` raw-socket members of one room (Switchboard's JSON frames). With `deflate` they offer
 *   permessage-deflate (`server_no_context_takeover`, so each compressed frame inflates on its own); compressed
 *   frames (RSV1) are inflated by the members that sample latency (every `sampleEvery`-th) and only counted by
 *   the others, which keeps the load's core for reading. Counted per member: `message` frames, `catchup` and
 *   `skipped` frames, seq gaps, bytes read from the socket (`bytesRead`, so what crossed the wire, compressed
 *   or not) and how its connection ended (the close code, 4003 for a slow consumer).
 *   With `slowRate` a member is a slow reader: it reads its socket `readBuffer` bytes at a time and takes at most
 *   `slowRate` frames a second (a token bucket holding one second's worth), pausing the socket in between, so
 *   what it has not read waits in the kernel's buffers and then the server's. Every `keepaliveMs` each member
 *   sends a `pong` (any frame counts as alive): a reader that is slow is not a dead one, and is not cut for a
 *   ping it has not reached yet.
 * - `publisher`: one member that publishes `rate` quotes a second (bench/lib/ticker-quote.mjs), each with a key
 *   drawn from `keys` by a seeded generator, from the `go` command's t0 to its endAt; it counts acks, errors and
 *   the last seq, and reports `done`.
 *
 * Times are `performance.timeOrigin + performance.now()`, taken once per read.
 */
import { performance } from 'node:perf_hooks';
import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import { clientFrame, PONG, RawWs } from './raw-ws.mjs';
import { percentiles } from './stats.mjs';
import { quote, seeded } from './ticker-quote.mjs';

const nowMs = () => performance.timeOrigin + performance.now();
const send = (m) => process.send?.(m);

let cfg = null;
let chunkNow = nowMs();
const origOnFrames = RawWs.prototype.onFrames;
RawWs.prototype.onFrames = function (chunk) {
  chunkNow = nowMs();
  origOnFrames.call(this, chunk);
  this.afterRead?.();
};

const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n';
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const SEQ = Buffer.from('"seq":');
const DATA_T = Buffer.from('"data":{"t":');

function readNum(buf, i, end) {
  let j = i;
  while (j < end && buf[j] !== 0x2c && buf[j] !== 0x7d) j++;
  return Number(buf.toString('latin1', i, j));
}
const fieldOf = (needle, buf, p, len) => {
  const i = buf.indexOf(needle, p);
  return i < 0 || i >= p + len ? null : readNum(buf, i + needle.length, p + len);
};

/** `message`, `catchup`, `skipped`, `ping`, `connected`, `joined`, `ack`, `error` or `?`, from the type's first letters. */
function typeOf(buf, p, len) {
  if (len < 12 || buf[p] !== 0x7b || buf[p + 8] !== 0x22) return '?';
  const a = buf[p + 9];
  const b = buf[p + 10];
  if (a === 0x6d) return 'message';
  if (a === 0x63) return b === 0x61 ? 'catchup' : 'connected';
  if (a === 0x73) return 'skipped';
  if (a === 0x70) return b === 0x69 ? 'ping' : '?';
  if (a === 0x6a) return 'joined';
  if (a === 0x61) return 'ack';
  if (a === 0x65) return 'error';
  return '?';
}

// ───────────────────────────── members ─────────────────────────────

function runMembers() {
  const n = cfg.n;
  const conns = new Array(n);
  const counts = new Uint32Array(n);
  const lastSeq = new Float64Array(n).fill(-1);
  const bytesAt = new Float64Array(n);
  const closeCode = new Int32Array(n).fill(-1);
  const lat = [];
  const c0 = { catchups: 0, catchupKeys: 0, skipped: 0, skippedSeqs: 0, gaps: 0, gapSeqs: 0, dups: 0, errors: 0, inflated: 0, inflateErrors: 0, compressed: 0 };
  let k = { ...c0 };
  let joined = 0;
  let failures = 0;
  let total = 0;
  let inWindow = 0;
  let win = null;
  let inflight = 0;
  let next = 0;
  let readySent = false;
  const t0 = nowMs();
  let lastJoinAt = 0;
  const slow = cfg.slowRate > 0;

  const onText = (c, buf, p, len) => {
    const t = typeOf(buf, p, len);
    const i = c.idx;
    if (t === 'message') {
      counts[i]++;
      total++;
      if (win !== null && chunkNow >= win.t0 && chunkNow < win.endAt) inWindow++;
      const seq = fieldOf(SEQ, buf, p, len);
      if (c.catchupLeft > 0) {
        // The newest message of each key missed, in seq order: gaps between them are what conflation is.
        lastSeq[i] = --c.catchupLeft === 0 ? c.catchupTo : seq;
      } else if (seq !== null) {
        const last = lastSeq[i];
        if (last >= 0 && seq <= last) k.dups++;
        else if (last >= 0 && seq !== last + 1) {
          k.gaps++;
          k.gapSeqs += seq - last - 1;
        }
        if (seq > last) lastSeq[i] = seq;
      }
      if (i % cfg.sampleEvery === 0 && !slow) {
        const at = fieldOf(DATA_T, buf, p, len);
        if (at !== null && win !== null && at >= win.t0 - 50 && at < win.endAt + 50) lat.push(chunkNow - at);
      }
    } else if (t === 'catchup' || t === 'skipped') {
      // A catch-up or skip is not a gap: the next message continues after its `to`.
      const f = JSON.parse(buf.toString('utf8', p, p + len));
      if (t === 'catchup') {
        k.catchups++;
        k.catchupKeys += f.keys;
      } else {
        k.skipped++;
        k.skippedSeqs += f.to - f.from + 1;
      }
      c.catchupLeft = t === 'catchup' ? f.keys : 0;
      c.catchupTo = f.to;
      if (c.catchupLeft === 0) lastSeq[i] = f.to;
    } else if (t === 'ping') c.send(PONG);
    else if (t === 'connected') c.send(`{"type":"join","id":2,"room":"${cfg.room}"}`);
    else if (t === 'joined') {
      if (c.joined) return;
      c.joined = true;
      joined++;
      inflight--;
      lastJoinAt = chunkNow;
      pump();
    } else if (t === 'error') k.errors++;
  };

  const h = {
    onOpen(c) {
      c.send(`{"type":"connect","id":1,"user":"${cfg.userPrefix}${c.idx}"}`);
    },
    onRefused(c) {
      c.refused = true;
    },
    onServerClose(c, code) {
      closeCode[c.idx] = code;
    },
    onClose(c) {
      clearInterval(c.keepalive);
      clearTimeout(c.resumeTimer);
      if (c.joined) {
        if (closeCode[c.idx] < 0) closeCode[c.idx] = 0;
        return;
      }
      inflight--;
      failures++;
      pump();
    },
    onFrame(c, op, buf, p, len, rsv1) {
      c.frames++;
      if (op !== 1) return;
      if (!rsv1) return onText(c, buf, p, len);
      k.compressed++;
      // Only room messages are compressed: members that do not sample count them without inflating.
      if (c.idx % cfg.sampleEvery !== 0) {
        counts[c.idx]++;
        total++;
        if (win !== null && chunkNow >= win.t0 && chunkNow < win.endAt) inWindow++;
        return;
      }
      let text;
      try {
        // No context takeover: each frame inflates alone; the deflate data ends in a sync flush, not a final block.
        text = inflateRawSync(Buffer.concat([buf.subarray(p, p + len), TAIL]), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      } catch {
        k.inflateErrors++;
        return;
      }
      k.inflated++;
      onText(c, text, 0, text.length);
    },
  };

  /** The slow reader's token bucket: after each read, pause until it may take what it took. */
  const afterRead = function () {
    const now = nowMs();
    this.tokens = Math.min(cfg.slowRate, this.tokens + ((now - this.tokensAt) / 1000) * cfg.slowRate) - this.frames;
    this.tokensAt = now;
    this.frames = 0;
    if (this.tokens >= 0 || this.sock.destroyed) return;
    this.sock.pause();
    this.resumeTimer = setTimeout(() => this.sock.resume(), (-this.tokens / cfg.slowRate) * 1000);
  };

  function pump() {
    while (inflight < cfg.concurrency && next < n) {
      const c = new RawWs(next, h);
      c.frames = 0;
      if (slow) {
        c.tokens = cfg.slowRate;
        c.tokensAt = nowMs();
        c.afterRead = afterRead;
      }
      c.keepalive = setInterval(() => c.open && !c.sock.destroyed && c.send(PONG), cfg.keepaliveMs);
      conns[next++] = c;
      inflight++;
      c.start(cfg.port, cfg.localAddress, '/ws', { headers: cfg.deflate ? OFFER : '', readBuffer: slow ? cfg.readBuffer : 0 });
    }
    if (!readySent && joined + failures >= n) {
      readySent = true;
      send({ ev: 'ready', joined, failures, refused: 0, seconds: (lastJoinAt - t0) / 1000 });
    }
  }

  const stats = (expect) => {
    let short = 0;
    let over = 0;
    let open = 0;
    let bytes = 0;
    let deflate = 0;
    const closed = {};
    for (let i = 0; i < n; i++) {
      const c = conns[i];
      if (!c?.joined) continue;
      bytes += c.sock.bytesRead - bytesAt[i];
      if (c.deflate) deflate++;
      if (closeCode[i] < 0) open++;
      else closed[closeCode[i]] = (closed[closeCode[i]] ?? 0) + 1;
      if (expect !== undefined) {
        if (counts[i] < expect) short += expect - counts[i];
        else over += counts[i] - expect;
      }
    }
    return { ev: 'stats', n, joined, failures, open, closed, deflate, total, inWindow, short, over, bytes, ...k };
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
      k = { ...c0 };
      for (let i = 0; i < n; i++) if (conns[i]?.joined) bytesAt[i] = conns[i].sock.bytesRead;
      win = null;
      send({ ev: 'reset' });
    } else if (m.cmd === 'stats') send(stats(m.expect));
    else if (m.cmd === 'latency') send({ ev: 'latency', lat });
  });
  pump();
}

// ───────────────────────────── publisher ─────────────────────────────

function runPublisher() {
  const rand = seeded(cfg.seed);
  let nextId = 10;
  let sent = 0;
  let acked = 0;
  let errors = 0;
  let errorSample = null;
  let lastSeq = 0;
  let running = false;
  let t0 = 0;
  let endAt = 0;
  const sentAt = new Map();
  const ackLat = [];
  const perKey = new Uint32Array(cfg.keys);

  const publishOne = (at) => {
    const id = nextId++;
    const key = Math.floor(rand() * cfg.keys);
    const data = JSON.stringify(quote(key, perKey[key]++, at));
    sentAt.set(id, at);
    c.sock.write(clientFrame(`{"type":"publish","id":${id},"room":"${cfg.room}","key":"K${key}","data":${data}}`));
    sent++;
  };
  const maybeDone = () => {
    if (running || sentAt.size > 0 || t0 === 0) return;
    send({ ev: 'done', t0, endAt, sent, acked, errors, errorSample, lastSeq, ackLatencyMs: percentiles(ackLat, [50, 99]) });
    t0 = 0;
  };

  const h = {
    onOpen: (conn) => conn.send(`{"type":"connect","id":1,"user":"publisher"}`),
    onRefused: (_c, status) => send({ ev: 'fatal', error: `publisher refused: ${status}` }),
    onClose: () => (running || sentAt.size > 0 ? send({ ev: 'fatal', error: 'publisher connection closed' }) : undefined),
    onFrame(conn, op, buf, p, len) {
      if (op !== 1) return;
      const t = typeOf(buf, p, len);
      if (t === 'ping') conn.send(PONG);
      else if (t === 'connected') conn.send(`{"type":"join","id":2,"room":"${cfg.room}"}`);
      else if (t === 'joined') send({ ev: 'ready' });
      else if (t === 'ack' || t === 'error') {
        const f = JSON.parse(buf.toString('utf8', p, p + len));
        const at = sentAt.get(f.id);
        if (at === undefined) return;
        sentAt.delete(f.id);
        if (t === 'ack') {
          acked++;
          if (f.seq > lastSeq) lastSeq = f.seq;
          ackLat.push(chunkNow - at);
        } else {
          errors++;
          errorSample ??= f;
        }
        maybeDone();
      }
    },
  };
  const c = new RawWs(0, h);
  c.start(cfg.port, cfg.localAddress, '/ws');

  process.on('message', (m) => {
    if (m.cmd !== 'go') return;
    endAt = m.endAt;
    setTimeout(
      () => {
        t0 = nowMs();
        running = true;
        // Evenly spaced instants from t0; catches up if the timer fires late.
        let k = 0;
        const tick = () => {
          const now = nowMs();
          if (now >= endAt) {
            running = false;
            return maybeDone();
          }
          const due = Math.floor(((now - t0) / 1000) * cfg.rate) + 1;
          if (k < due) c.sock.cork();
          for (; k < due; k++) publishOne(now);
          c.sock.uncork();
          setTimeout(tick, Math.max(1, t0 + (k / cfg.rate) * 1000 - nowMs()));
        };
        tick();
      },
      Math.max(0, m.t0 - nowMs()),
    );
  });
}

process.on('message', (m) => {
  if (m.cmd === 'open') {
    cfg = { concurrency: 100, sampleEvery: 10, userPrefix: 'u', slowRate: 0, readBuffer: 4096, keepaliveMs: 10000, seed: 16, ...m };
    if (cfg.role === 'members') runMembers();
    else if (cfg.role === 'publisher') runPublisher();
  } else if (m.cmd === 'close') process.exit(0);
});
process.on('disconnect', () => process.exit(0));
