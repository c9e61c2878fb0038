/**
 * The Pusher side of the bench, free of I/O so tests can check it: the path and frames pusher-js 8 sends,
 * classifying server frames by their leading bytes, the bench's data strings (`S<stream>.<n>|T<ms>|…`: which
 * HTTP publishing stream sent it, its number on that stream, the publisher's clock), per-member order checks
 * over several streams, Pusher's HTTP API request signing, and the presence checks of the churn scenario
 * (member lists against the truth, member_added / member_removed against each user's join / leave transitions).
 */
import { createHash, createHmac } from 'node:crypto';

/** What pusher-js 8.6.0 asks for over its WebSocket transport. */
export const pusherPath = (key) => `/app/${key}?protocol=7&client=js&version=8.6.0&flash=false`;

/** pusher-js's subscribe: `auth` is the empty string on a public channel; `channel_data` only on presence. */
export function subscribeFrame(channel, auth = '', channelData) {
  return JSON.stringify({ event: 'pusher:subscribe', data: channelData === undefined ? { auth, channel } : { auth, channel_data: channelData, channel } });
}
export const PUSHER_PING_FRAME = '{"event":"pusher:ping","data":{}}';
export const PUSHER_PONG_FRAME = '{"event":"pusher:pong","data":{}}';

const EVENT_HEAD = Buffer.from('{"event":"');
const KINDS = new Map([
  ['pusher:connection_established', 'established'],
  ['pusher_internal:subscription_succeeded', 'subscribed'],
  ['pusher:subscription_error', 'subError'],
  ['pusher:error', 'error'],
  ['pusher:ping', 'ping'],
  ['pusher:pong', 'pong'],
  ['pusher_internal:member_added', 'memberAdded'],
  ['pusher_internal:member_removed', 'memberRemoved'],
  ['pusher:cache_miss', 'other'],
]);

const HEADS = new Map();

/**
 * The kind of one server text frame at buf[p..p+len): a Pusher protocol event by name, `message` for the
 * bench's own event `eventName`, `other` otherwise. Reads only the event name when the frame starts with
 * `{"event":"` (Switchboard and Soketi both write it first); parses the JSON otherwise.
 */
export function pusherFrameKind(buf, p, len, eventName) {
  // The bench's own event, by far the most frequent: one comparison of `{"event":"<name>"`.
  let head = HEADS.get(eventName);
  if (head === undefined) HEADS.set(eventName, (head = Buffer.from(`{"event":${JSON.stringify(eventName)}`)));
  if (len > head.length && buf.compare(head, 0, head.length, p, p + head.length) === 0) return 'message';
  let name;
  if (len > EVENT_HEAD.length && buf.compare(EVENT_HEAD, 0, EVENT_HEAD.length, p, p + EVENT_HEAD.length) === 0) {
    // Event names are short: the search ends at the name's closing quote.
    const q = buf.indexOf(0x22, p + EVENT_HEAD.length);
    if (q < 0 || q >= p + len) return 'other';
    name = buf.toString('latin1', p + EVENT_HEAD.length, q);
  } else {
    try {
      name = JSON.parse(buf.toString('utf8', p, p + len)).event;
    } catch {
      return 'other';
    }
  }
  if (name === eventName) return 'message';
  return KINDS.get(name) ?? 'other';
}

/** `data` of a frame, parsed once more when it is a JSON string (Pusher sends event data as a string). */
export function frameData(text) {
  const f = JSON.parse(text);
  let d = f.data;
  if (typeof d === 'string') {
    try {
      d = JSON.parse(d);
    } catch {
      /* a plain string */
    }
  }
  return { event: f.event, channel: f.channel, data: d };
}

/** The bench's event data: stream, number on that stream, the publisher's clock (ms), padded to `bytes`. */
export function benchData(stream, n, atMs, bytes = 100) {
  const head = `S${stream}.${n}|T${atMs.toFixed(3)}|`;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

/**
 * The same for v1 members (published through `POST /api/publish`): the clock first, where loadgen.mjs reads it
 * (`T<ms>|`); v1 members check order by the server's seq.
 */
export function v1BenchData(stream, n, atMs, bytes = 100) {
  const head = `T${atMs.toFixed(3)}|S${stream}.${n}|`;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

const CHANNEL_HEAD = Buffer.from(',"channel":"');
const DATA_HEAD = Buffer.from(',"data":"');
const DATA_KEY = Buffer.from('"data":"');

/**
 * Where the characters of a frame's `data` string start, or -1. Both Switchboard and Soketi write
 * `{"event":"…","channel":"…","data":"…"}`: found in a few steps, each search ending inside the frame (an
 * unbounded Buffer#indexOf would scan the rest of the TCP chunk for every frame). Any other layout is
 * searched within the frame.
 */
function dataStart(buf, p, end) {
  if (buf.compare(EVENT_HEAD, 0, EVENT_HEAD.length, p, Math.min(end, p + EVENT_HEAD.length)) === 0) {
    const q = buf.indexOf(0x22, p + EVENT_HEAD.length);
    const c = q + 1;
    if (q > 0 && c + CHANNEL_HEAD.length < end && buf.compare(CHANNEL_HEAD, 0, CHANNEL_HEAD.length, c, c + CHANNEL_HEAD.length) === 0) {
      const cq = buf.indexOf(0x22, c + CHANNEL_HEAD.length);
      if (cq > 0 && cq + DATA_HEAD.length < end && buf.compare(DATA_HEAD, 0, DATA_HEAD.length, cq + 1, cq + 1 + DATA_HEAD.length) === 0)
        return cq + 1 + DATA_HEAD.length;
    }
  }
  const i = buf.subarray(p, end).indexOf(DATA_KEY);
  return i < 0 ? -1 : p + i + DATA_KEY.length;
}

/** Reads an unsigned decimal at buf[i..end); returns [value, index after it]. */
function readUint(buf, i, end) {
  let v = 0;
  const s = i;
  for (; i < end; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return i === s ? [-1, i] : [v, i];
}

/** The number written at buf[i..) up to `|` (within end), or NaN. */
function clockAt(buf, i, end) {
  let j = i;
  while (j < end && buf[j] !== 0x7c) j++;
  return j >= end ? NaN : Number(buf.toString('latin1', i, j));
}

/**
 * { stream, n, at } of a bench event frame at buf[p..p+len), or null when its data is not the bench's (`at`
 * NaN unless `withClock`). Data from the v1 WebSocket publisher (`T<ms>|…`, loadgen.mjs) has no stream: { stream: -1, n: -1, at }.
 */
export function benchDataOf(buf, p, len, withClock = true) {
  const end = p + len;
  const d = dataStart(buf, p, end);
  if (d < 0 || d >= end) return null;
  if (buf[d] === 0x54) return { stream: -1, n: -1, at: withClock ? clockAt(buf, d + 1, end) : NaN }; // 'T'
  if (buf[d] !== 0x53) return null; // 'S'
  const [stream, j] = readUint(buf, d + 1, end);
  if (stream < 0 || buf[j] !== 0x2e) return null; // '.'
  const [n, k] = readUint(buf, j + 1, end);
  if (n < 0 || buf[k] !== 0x7c || buf[k + 1] !== 0x54) return null; // '|T'
  // The clock is read only for the members that sample latency (a string and a Number per message otherwise).
  return { stream, n, at: withClock ? clockAt(buf, k + 2, end) : NaN };
}

/**
 * Order checks for `members` members over `streams` publishing streams (no allocation per message): each
 * stream's numbers must reach each member in order, one after the other. A number at or below the last seen
 * on its stream is a duplicate or reordering, a jump a gap (its size added to `gapSeqs`); a member's first
 * number on a stream is not a gap. Same summary as MemberSeqs (stats.mjs).
 */
export class StreamSeqs {
  constructor(members, streams) {
    this.streams = streams;
    this.last = new Float64Array(members * streams);
    this.reset();
  }

  reset() {
    this.last.fill(-1);
    this.dupsOrReordered = 0;
    this.gaps = 0;
    this.gapSeqs = 0;
    this.badStream = 0;
  }

  add(member, stream, n) {
    if (stream < 0 || stream >= this.streams) {
      this.badStream++;
      return;
    }
    const k = member * this.streams + stream;
    const last = this.last[k];
    if (last < 0) {
      this.last[k] = n;
      return;
    }
    if (n <= last) this.dupsOrReordered++;
    else {
      if (n !== last + 1) {
        this.gaps++;
        this.gapSeqs += n - last - 1;
      }
      this.last[k] = n;
    }
  }

  summary() {
    return { dupsOrReordered: this.dupsOrReordered + this.badStream, gaps: this.gaps, gapSeqs: this.gapSeqs };
  }
}

const md5 = (s) => createHash('md5').update(s).digest('hex');

/**
 * Pusher's HTTP API signature (auth_version 1.0): HMAC-SHA256 with the app secret over
 * `METHOD\n/path\nsorted query`, the query holding auth_key, auth_timestamp, auth_version, body_md5 (with a
 * body) and any other parameters. Returns the full query string, auth_signature last.
 */
export function signedQuery({ key, secret, method, path, body, params = {}, timestampS = Math.floor(Date.now() / 1000) }) {
  const q = { auth_key: key, auth_timestamp: String(timestampS), auth_version: '1.0', ...params };
  if (body !== undefined && body !== null && body !== '') q.body_md5 = md5(body);
  const query = Object.keys(q)
    .sort()
    .map((k) => `${k}=${q[k]}`)
    .join('&');
  const signature = createHmac('sha256', secret).update(`${method.toUpperCase()}\n${path}\n${query}`).digest('hex');
  return `${query}&auth_signature=${signature}`;
}

// ───────────────────────────── presence checks (churn) ─────────────────────────────

/**
 * A node's member list against the users actually subscribed: `missing` are subscribed but not listed,
 * `extra` listed but not subscribed (both sorted), `ok` when neither has any.
 */
export function compareMembers(expected, listed) {
  const want = new Set(expected);
  const got = new Set(listed);
  const missing = [...want].filter((u) => !got.has(u)).sort();
  const extra = [...got].filter((u) => !want.has(u)).sort();
  return { ok: missing.length === 0 && extra.length === 0, missing, extra, listed: got.size, expected: want.size };
}

/**
 * Users' connection counts as clients open and close them: a user's first connection is a join transition,
 * the close of its last a leave transition. `transitions(user)` is what an observer present throughout must
 * see: one member_added per join, one member_removed per leave, alternating.
 */
export class PresenceTruth {
  constructor() {
    this.conns = new Map();
    this.joins = new Map();
    this.leaves = new Map();
  }

  opened(user) {
    const n = this.conns.get(user) ?? 0;
    this.conns.set(user, n + 1);
    if (n === 0) this.joins.set(user, (this.joins.get(user) ?? 0) + 1);
  }

  closed(user) {
    const n = this.conns.get(user) ?? 0;
    if (n <= 0) throw new Error(`user ${user} closed a connection it did not have`);
    this.conns.set(user, n - 1);
    if (n === 1) this.leaves.set(user, (this.leaves.get(user) ?? 0) + 1);
  }

  /** Users with at least one subscribed connection now. */
  present() {
    return [...this.conns].filter(([, n]) => n > 0).map(([u]) => u);
  }

  users() {
    return [...new Set([...this.joins.keys(), ...this.conns.keys()])];
  }

  transitions(user) {
    return { joins: this.joins.get(user) ?? 0, leaves: this.leaves.get(user) ?? 0 };
  }
}

/**
 * An observer's member events against the truth. `events` are `['added' | 'removed', user]` in the order
 * received (the observer subscribed before any other user). Per user: `dupAdded` / `dupRemoved` are events
 * beyond its transitions, `missedAdded` / `missedRemoved` transitions without their event, `outOfTurn` an
 * event that repeats the previous one for that user (added twice without a removed between, or the reverse).
 * Also the observer's final view (events applied in order) against the users present.
 */
export function checkMemberEvents(events, truth) {
  const added = new Map();
  const removed = new Map();
  const lastKind = new Map();
  const view = new Set();
  let outOfTurn = 0;
  for (const [kind, user] of events) {
    const m = kind === 'added' ? added : removed;
    m.set(user, (m.get(user) ?? 0) + 1);
    if ((lastKind.get(user) ?? 'removed') === kind) outOfTurn++;
    lastKind.set(user, kind);
    if (kind === 'added') view.add(user);
    else view.delete(user);
  }
  const out = { users: 0, dupAdded: 0, dupRemoved: 0, missedAdded: 0, missedRemoved: 0, outOfTurn, worst: [] };
  for (const user of new Set([...truth.users(), ...added.keys(), ...removed.keys()])) {
    out.users++;
    const t = truth.transitions(user);
    const a = added.get(user) ?? 0;
    const r = removed.get(user) ?? 0;
    out.dupAdded += Math.max(0, a - t.joins);
    out.missedAdded += Math.max(0, t.joins - a);
    out.dupRemoved += Math.max(0, r - t.leaves);
    out.missedRemoved += Math.max(0, t.leaves - r);
    if ((a !== t.joins || r !== t.leaves) && out.worst.length < 5) out.worst.push({ user, joins: t.joins, added: a, leaves: t.leaves, removed: r });
  }
  const final = compareMembers(truth.present(), view);
  out.finalView = { missing: final.missing.length, extra: final.extra.length };
  out.ok = out.dupAdded + out.dupRemoved + out.missedAdded + out.missedRemoved + out.outOfTurn === 0 && final.ok;
  return out;
}
