#!/usr/bin/env node
/**
 * The raw `ws` floor: the same work as a Switchboard node's hot path, written directly on `ws`, as a
 * practical limit for a `ws`-based server. It speaks the subset of Switchboard's protocol the benchmark
 * uses (connect, join, publish → ack + message to every member, pong), keeps rooms as Sets, encodes each
 * message frame once (JSON + WebSocket header) and writes each member's queued frames once per
 * event-loop tick (cork/uncork). No auth, presence, history or recovery.
 *
 * Usage: node ws-floor-server.mjs <port>   (prints {"msg":"listening","port":N} on stdout)
 */
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
const rooms = new Map(); // name -> { seq, members: Set<state> }
let dirty = [];
let scheduled = false;

function textFrame(str) {
  const body = Buffer.from(str, 'utf8');
  const len = body.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = Buffer.allocUnsafe(hl + len);
  f[0] = 0x81;
  if (len < 126) f[1] = len;
  else if (len < 65536) {
    f[1] = 126;
    f.writeUInt16BE(len, 2);
  } else {
    f[1] = 127;
    f.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    f.writeUInt32BE(len >>> 0, 6);
  }
  body.copy(f, hl);
  return f;
}

function flush() {
  scheduled = false;
  const list = dirty;
  dirty = [];
  for (const st of list) {
    const q = st.q;
    st.q = null;
    const s = st.sock;
    if (s.destroyed) continue;
    if (q.length === 1) s.write(q[0]);
    else {
      s.cork();
      for (const b of q) s.write(b);
      s.uncork();
    }
  }
}

function enqueue(st, frame) {
  if (st.q === null) {
    st.q = [frame];
    dirty.push(st);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  } else st.q.push(frame);
}

const wss = new WebSocketServer({ port, host: '127.0.0.1', path: '/ws', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  const st = { sock: ws._socket, q: null, user: '', rooms: [] };
  ws.on('message', (data) => {
    let f;
    try {
      f = JSON.parse(data.toString('utf8'));
    } catch {
      return;
    }
    if (f.type === 'publish') {
      const room = rooms.get(f.room);
      if (room === undefined || !room.members.has(st)) return enqueue(st, textFrame(JSON.stringify({ type: 'error', id: f.id, code: 'not_member' })));
      const seq = ++room.seq;
      const frame = textFrame(JSON.stringify({ type: 'message', room: f.room, seq, from: st.user, ts: Date.now(), data: f.data }));
      for (const m of room.members) enqueue(m, frame);
      enqueue(st, textFrame(JSON.stringify({ type: 'ack', id: f.id, room: f.room, seq })));
    } else if (f.type === 'connect') {
      st.user = f.user;
      enqueue(st, textFrame(JSON.stringify({ type: 'connected', id: f.id, user: f.user })));
    } else if (f.type === 'join') {
      let room = rooms.get(f.room);
      if (room === undefined) rooms.set(f.room, (room = { seq: 0, members: new Set() }));
      room.members.add(st);
      st.rooms.push(f.room);
      enqueue(st, textFrame(JSON.stringify({ type: 'joined', id: f.id, room: f.room, seq: room.seq })));
    }
  });
  ws.on('error', () => undefined);
  ws.on('close', () => {
    for (const name of st.rooms) rooms.get(name)?.members.delete(st);
  });
});
wss.on('listening', () => process.stdout.write(`${JSON.stringify({ msg: 'listening', port: wss.address().port })}\n`));
process.on('SIGTERM', () => process.exit(0));
