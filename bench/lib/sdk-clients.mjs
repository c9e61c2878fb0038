#!/usr/bin/env node
/**
 * A process of client SDK connections for bench/drain-figures.mjs, driven over IPC. `open` starts `n` SDK
 * clients (the SDK of the build measured, `<dist>/client/index.js`, with default options) at `ratePerSec`, each
 * joined to one of `rooms` rooms, all connecting to `url`; `route` changes where new sockets go (a load balancer
 * taking a node out of rotation); `mark` notes the drain's start; `stats` reports what the clients saw since:
 * close times and codes, the node each is on, attempts, and per-room seq checks (duplicates, gaps, resets).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

const send = (m) => process.send?.(m);
let target = '';
class Routed extends WebSocket {
  constructor() {
    super(target);
  }
}

const clients = [];
let markAt = Infinity;

async function open({ dist, url, n, rooms, roomOffset, userPrefix, ratePerSec }) {
  const { connect } = await import(pathToFileURL(join(dist, 'client', 'index.js')).href);
  target = url;
  const perTick = Math.max(1, Math.round(ratePerSec / 20));
  for (let i = 0; i < n; i++) {
    if (i > 0 && i % perTick === 0) await new Promise((r) => setTimeout(r, 50));
    const client = connect(url, { WebSocket: Routed, user: `${userPrefix}${i}` });
    const c = { client, room: null, closedAt: null, closeCode: null, connectedAfter: 0, attemptsAfter: 0, last: 0, received: 0, dups: 0, gaps: 0, resets: 0 };
    client.on('state', (e) => {
      const now = Date.now();
      if (now < markAt) return;
      if (e.to === 'disconnected' && c.closedAt === null) {
        c.closedAt = now;
        c.closeCode = e.error?.closeCode ?? null;
      }
      if (e.to === 'reconnecting') c.attemptsAfter++;
      if (e.to === 'connected') c.connectedAfter++;
    });
    c.room = client.room(`r${(roomOffset + i) % rooms}`);
    c.room.on('message', (m) => {
      c.received++;
      if (c.last !== 0 && m.seq <= c.last) c.dups++;
      else if (c.last !== 0 && m.seq > c.last + 1) c.gaps++;
      if (m.seq > c.last) c.last = m.seq;
    });
    c.room.on('reset', () => c.resets++);
    clients.push(c);
  }
  for (;;) {
    const joined = clients.filter((c) => c.room.joined).length;
    if (joined === clients.length) break;
    send({ ev: 'progress', joined });
    await new Promise((r) => setTimeout(r, 250));
  }
  send({ ev: 'ready', joined: clients.length });
}

function stats() {
  const onNode = {};
  const closeCodes = {};
  for (const c of clients) {
    const node = c.client.state === 'connected' ? (c.client.info?.node ?? '?') : c.client.state;
    onNode[node] = (onNode[node] ?? 0) + 1;
    if (c.closeCode !== null || c.closedAt !== null) closeCodes[String(c.closeCode)] = (closeCodes[String(c.closeCode)] ?? 0) + 1;
  }
  const sum = (f) => clients.reduce((s, c) => s + f(c), 0);
  return {
    ev: 'stats',
    n: clients.length,
    onNode,
    joined: clients.filter((c) => c.client.state === 'connected' && c.room.joined).length,
    closeTimes: clients.filter((c) => c.closedAt !== null).map((c) => c.closedAt),
    closeCodes,
    attemptsAfter: sum((c) => c.attemptsAfter),
    connectedAfter: sum((c) => c.connectedAfter),
    lastSeqs: clients.map((c) => [c.room.name, c.last]),
    received: sum((c) => c.received),
    dups: sum((c) => c.dups),
    gaps: sum((c) => c.gaps),
    resets: sum((c) => c.resets),
  };
}

process.on('message', (m) => {
  if (m.cmd === 'open') {
    open(m).catch((err) => send({ ev: 'fatal', error: String(err?.stack ?? err) }));
  } else if (m.cmd === 'route') {
    target = m.url;
    send({ ev: 'routed' });
  } else if (m.cmd === 'mark') {
    markAt = m.at;
    send({ ev: 'marked' });
  } else if (m.cmd === 'stats') {
    send(stats());
  } else if (m.cmd === 'close') {
    for (const c of clients) c.client.close();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on('disconnect', () => process.exit(0));
