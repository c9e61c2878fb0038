#!/usr/bin/env node
/**
 * The Socket.IO 4 peer: the same work as the benchmark asks of Switchboard (join a room, publish → ack +
 * broadcast to the room with a per-room seq and a server timestamp), WebSocket transport only, and with
 * `@socket.io/redis-adapter` (over ioredis) when a Redis URL is given, for the multi-node scenario.
 *
 * Usage: node socketio-server.mjs <port> [redis-url]   (prints {"msg":"listening","port":N} on stdout)
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 0);
const redisUrl = process.argv[3];
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, httpCompression: false });
if (redisUrl) {
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const { Redis } = await import('ioredis');
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));
}
const seqs = new Map();
io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack({ room, seq: seqs.get(room) ?? 0 });
  });
  socket.on('publish', (f, ack) => {
    if (f === null || typeof f !== 'object' || !socket.rooms.has(f.room)) {
      if (typeof ack === 'function') ack({ error: 'not_member' });
      return;
    }
    const seq = (seqs.get(f.room) ?? 0) + 1;
    seqs.set(f.room, seq);
    io.to(f.room).emit('message', { room: f.room, seq, from: socket.id, ts: Date.now(), data: f.data });
    if (typeof ack === 'function') ack({ seq });
  });
});
http.listen(port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ msg: 'listening', port: http.address().port })}\n`));
process.on('SIGTERM', () => process.exit(0));
