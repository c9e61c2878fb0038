/**
 * Heartbeats, graceful drain on SIGTERM, and the embedded store across restarts and crashes.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startNodeProcess, tempDir, type NodeProcess } from '../helpers/node-process.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient, type Frame } from '../helpers/ws-client.js';

const started: NodeProcess[] = [];
async function node(opts: Parameters<typeof startNodeProcess>[0] = {}): Promise<NodeProcess> {
  const n = await startNodeProcess(opts);
  started.push(n);
  return n;
}
afterEach(async () => {
  for (const n of started.splice(0)) await n.kill();
});

const seqs = (frames: Frame[]): number[] => frames.map((f) => f.seq as number);

describe('heartbeats', () => {
  it('pings clients; one that misses the pong deadline is closed with 4002 and leaves presence with lastSeen', async () => {
    // Short interval (the watcher sees several pings) but a pong deadline a starved test process
    // (which answers the watcher's pings) or node process can still meet on a loaded machine.
    const n = await node({ args: ['--ping-interval-ms', '300', '--ping-timeout-ms', '2000', '--presence-diff-ms', '50'] });
    const watcher = await TestClient.connect(n.wsUrl, { user: 'watcher' });
    await watcher.request({ type: 'join', room: 'hb' });
    const silent = await TestClient.connect(n.wsUrl, { user: 'silent' });
    silent.answerPings = false;
    await silent.request({ type: 'join', room: 'hb' });
    const t0 = Date.now();
    const closed = await silent.waitClosed(15_000);
    expect(closed.code).toBe(4002);
    expect(silent.frames.some((f) => f.type === 'ping')).toBe(true);
    const diff = await watcher.waitFor((f) => f.type === 'presence.diff' && (f.left as { user: string }[]).some((l) => l.user === 'silent'));
    expect(diff).toBeDefined();
    const list = await watcher.request({ type: 'presence', room: 'hb' });
    const s = (list.members as { user: string; online: boolean; lastSeen: number }[]).find((m) => m.user === 'silent')!;
    expect(s.online).toBe(false);
    expect(s.lastSeen).toBeGreaterThanOrEqual(t0 - 2000);
    // the watcher answers pings and stays connected through several intervals
    expect(watcher.frames.filter((f) => f.type === 'ping').length).toBeGreaterThanOrEqual(1);
    expect(watcher.closed).toBeNull();
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    expect(metrics).toMatch(/switchboard_heartbeat_timeouts_total\{[^}]*\} 1\b/);
    watcher.close();
  });

  it('a socket that never sends connect is closed with 4004', async () => {
    const n = await node({ args: ['--connect-timeout-ms', '300'] });
    const c = await TestClient.open(n.wsUrl);
    expect((await c.waitClosed(5000)).code).toBe(4004);
  });
});

describe('SIGTERM drain', () => {
  it('tells every client to reconnect after a spread-out delay, closes with 4001, exits 0', async () => {
    const n = await node({ args: ['--drain-spread-ms', '3000'] });
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => TestClient.connect(n.wsUrl, { user: `d${i}` })));
    for (const c of clients) await c.request({ type: 'join', room: 'drain' });
    const ack = await clients[0]!.request({ type: 'publish', room: 'drain', data: 'last words' });
    expect(ack.type).toBe('ack');
    const exit = n.stop();
    const delays: number[] = [];
    for (const c of clients) {
      const notice = await c.waitFor((f) => f.type === 'notice');
      expect(notice).toMatchObject({ code: 'reconnect' });
      const d = notice.reconnectAfterMs as number;
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(3000);
      delays.push(d);
      expect((await c.waitClosed()).code).toBe(4001);
      // the acked message reached every member before the close
      expect(c.messages('drain').map((m) => m.data)).toEqual(['last words']);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
    expect(await exit).toBe(0);
  });
});

describe('embedded store', () => {
  it('history survives a restart; seq continues under the same epoch; recovery reads the store', async () => {
    const dataDir = tempDir();
    const a = await node({ dataDir });
    const c = await TestClient.connect(a.wsUrl, { user: 'r' });
    const joined = await c.request({ type: 'join', room: 'persist' });
    for (let i = 1; i <= 5; i++) await c.request({ type: 'publish', room: 'persist', data: { i } });
    expect(await a.stop()).toBe(0);

    const b = await node({ dataDir });
    const hist = (await (await fetch(`${b.url}/api/rooms/persist/history`)).json()) as { messages: Frame[] };
    expect(seqs(hist.messages)).toEqual([1, 2, 3, 4, 5]);
    expect(hist.messages.map((m) => (m.data as { i: number }).i)).toEqual([1, 2, 3, 4, 5]);
    const c2 = await TestClient.connect(b.wsUrl, { user: 'r' });
    const j2 = await c2.request({ type: 'join', room: 'persist', since: { seq: 2, epoch: joined.epoch } });
    // the window is empty after a restart: seqs 3..5 come from the store
    expect(j2).toMatchObject({ recovery: 'recovered', missed: 3, seq: 5, epoch: joined.epoch });
    const ack = await c2.request({ type: 'publish', room: 'persist', data: { i: 6 } });
    expect(ack).toMatchObject({ seq: 6, epoch: joined.epoch });
    const msgs = await c2.waitForMessages('persist', 4);
    expect(seqs(msgs)).toEqual([3, 4, 5, 6]);
    c2.close();
  }, 60_000); // two starts of an embedded node

  it('a publish retried with the same idem after a kill -9 and restart is stored once', async () => {
    const dataDir = tempDir();
    const a = await node({ dataDir });
    const c = await TestClient.connect(a.wsUrl, { user: 'retry' });
    await c.request({ type: 'join', room: 'idem-restart' });
    const first = await c.request({ type: 'publish', room: 'idem-restart', data: 'once', idem: 'r-1' });
    await a.kill(); // as if the ack had been lost with the node
    const b = await node({ dataDir });
    const c2 = await TestClient.connect(b.wsUrl, { user: 'retry' });
    await c2.request({ type: 'join', room: 'idem-restart' });
    const retry = await c2.request({ type: 'publish', room: 'idem-restart', data: 'once', idem: 'r-1' });
    expect(retry).toMatchObject({ type: 'ack', seq: first.seq, epoch: first.epoch, duplicate: true });
    const next = await c2.request({ type: 'publish', room: 'idem-restart', data: 'twice', idem: 'r-2' });
    expect(next).toMatchObject({ seq: 2, duplicate: false });
    const res = (await (await fetch(`${b.url}/api/rooms/idem-restart/history`)).json()) as { messages: Frame[] };
    expect(res.messages.map((m) => m.data)).toEqual(['once', 'twice']);
    c2.close();
  }, 60_000); // two starts of an embedded node

  it('every acked message survives kill -9', async () => {
    const dataDir = tempDir();
    const a = await node({ dataDir });
    const c = await TestClient.connect(a.wsUrl, { user: 'k' });
    await c.request({ type: 'join', room: 'crash' });
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => c.request({ type: 'publish', room: 'crash', data: i })));
    expect(acks.every((x) => x.type === 'ack')).toBe(true);
    await a.kill();
    const b = await node({ dataDir });
    const res = (await (await fetch(`${b.url}/api/rooms/crash/history?limit=1000`)).json()) as { messages: Frame[] };
    expect(seqs(res.messages)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  }, 60_000); // two starts of an embedded node on a loaded 2-core machine

  it('kill -9 while publishes are being written: every acked message is in history after the restart', async () => {
    const dataDir = tempDir();
    const a = await node({ dataDir });
    const c = await TestClient.connect(a.wsUrl, { user: 'w' });
    const rooms = ['mid-a', 'mid-b', 'mid-c'];
    for (const room of rooms) await c.request({ type: 'join', room });
    const acked = new Map<string, number[]>(rooms.map((r) => [r, []]));
    let killed = false;
    // 3 workers × 60 publishes in flight, until the node is gone: the kill lands among uncommitted writes.
    const worker = async (k: number): Promise<void> => {
      for (let i = 0; !killed; i++) {
        const room = rooms[(i + k) % rooms.length]!;
        const reply = await c.request({ type: 'publish', room, data: { k, i } }, 5_000).catch(() => null);
        if (reply?.type === 'ack') acked.get(room)!.push(reply.seq as number);
      }
    };
    const publishing = Promise.all(Array.from({ length: 180 }, (_, k) => worker(k)));
    await waitFor(() => [...acked.values()].reduce((s, x) => s + x.length, 0) >= 1500, 30_000, '1,500 acks');
    killed = true;
    await a.kill();
    await publishing;
    c.close();
    const b = await node({ dataDir });
    for (const room of rooms) {
      const stored: number[] = [];
      let after = 0;
      for (;;) {
        const page = (await (await fetch(`${b.url}/api/rooms/${room}/history?after=${after}&limit=1000`)).json()) as { messages: Frame[]; more: boolean };
        stored.push(...seqs(page.messages));
        if (!page.more) break;
        after = stored[stored.length - 1]!;
      }
      // Seqs are contiguous from 1, and every acked one is among them.
      expect(stored).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
      const missing = acked.get(room)!.filter((s) => s > stored.length);
      expect(missing, room).toEqual([]);
    }
  }, 90_000);

  it('a data dir left by the PGlite store (the previous default) starts with empty history and a warning, the old files untouched', async () => {
    const dataDir = tempDir();
    mkdirSync(join(dataDir, 'history'));
    writeFileSync(join(dataDir, 'history', 'PG_VERSION'), '18\n');
    writeFileSync(join(dataDir, 'history.lock'), '999999999\n'); // left by a PGlite node that died
    const a = await node({ dataDir });
    expect(a.logs.some((l) => l.level === 40 && /PGlite.*not read/.test(String(l.msg)))).toBe(true);
    const c = await TestClient.connect(a.wsUrl, { user: 'old' });
    await c.request({ type: 'join', room: 'after-pglite' });
    expect(await c.request({ type: 'publish', room: 'after-pglite', data: 1 })).toMatchObject({ type: 'ack', seq: 1 });
    c.close();
    expect(await a.stop()).toBe(0);
    expect(existsSync(join(dataDir, 'history', 'PG_VERSION'))).toBe(true);
  }, 60_000);
});
