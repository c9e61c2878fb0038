/**
 * Pure parts of the client SDK: backoff, reorder buffer, offline queue, options, errors, and the rule that
 * src/client imports nothing Node-only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backoffDelay, backoffWindow, defaultBackoff } from '../../src/client/backoff.js';
import { OfflineQueue, newIdem, type PendingPublish } from '../../src/client/offline-queue.js';
import { resolveOptions } from '../../src/client/options.js';
import { ReorderBuffer } from '../../src/client/reorder.js';
import { connect, SwitchboardClientError, type Message, type WebSocketConstructor } from '../../src/client/index.js';

const msg = (seq: number, epoch = 'e1'): Message => ({ room: 'r', seq, epoch, from: 'u', ts: 0, data: seq });
const seqs = (ms: Message[]): number[] => ms.map((m) => m.seq);

describe('backoff (full jitter)', () => {
  it('windows grow by factor up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffWindow(n, defaultBackoff))).toEqual([500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
    expect(backoffWindow(1000, defaultBackoff)).toBe(20000);
  });

  it('delays are uniform over [0, window): no floor, no spike', () => {
    const n = 20_000;
    const delays = Array.from({ length: n }, () => backoffDelay(1, defaultBackoff));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(500);
    const buckets = new Array<number>(10).fill(0);
    for (const d of delays) buckets[Math.floor(d / 50)]!++;
    for (const b of buckets) expect(Math.abs(b - n / 10)).toBeLessThan((n / 10) * 0.15);
    expect(backoffDelay(3, defaultBackoff, () => 0.5)).toBe(1000);
  });
});

describe('ReorderBuffer', () => {
  it('delivers in order, once, holding early messages', () => {
    const b = new ReorderBuffer(100);
    expect(b.setPosition({ seq: 0, epoch: 'e1' })).toEqual([]);
    expect(seqs(b.offer(msg(2)).deliver)).toEqual([]);
    expect(seqs(b.offer(msg(3)).deliver)).toEqual([]);
    expect(b.missing()).toEqual({ after: 0, upTo: 3 });
    expect(seqs(b.offer(msg(1)).deliver)).toEqual([1, 2, 3]);
    expect(seqs(b.offer(msg(2)).deliver)).toEqual([]);
    expect(seqs(b.offer(msg(3)).deliver)).toEqual([]);
    expect(b.missing()).toBeNull();
    expect(b.position).toEqual({ seq: 3, epoch: 'e1' });
  });

  it('reports another epoch without delivering', () => {
    const b = new ReorderBuffer(100);
    b.setPosition({ seq: 5, epoch: 'e1' });
    const r = b.offer(msg(1, 'e2'));
    expect(r).toEqual({ deliver: [], epochChanged: true });
    b.setPosition({ seq: 0, epoch: 'e2' });
    expect(seqs(b.offer(msg(1, 'e2')).deliver)).toEqual([1]);
  });

  it('bounded: beyond max it drops but still reports the range as missing', () => {
    const b = new ReorderBuffer(2);
    b.setPosition({ seq: 0, epoch: 'e1' });
    b.offer(msg(2));
    b.offer(msg(3));
    expect(b.full).toBe(true);
    b.offer(msg(4));
    expect(b.heldCount).toBe(2);
    expect(b.missing()).toEqual({ after: 0, upTo: 4 });
    expect(seqs(b.offer(msg(1)).deliver)).toEqual([1, 2, 3]);
    expect(b.missing()).toEqual({ after: 3, upTo: 4 });
  });

  it('skipGap jumps to just before the first held message', () => {
    const b = new ReorderBuffer(10);
    b.setPosition({ seq: 1, epoch: 'e1' });
    b.offer(msg(4));
    b.offer(msg(5));
    const r = b.skipGap();
    expect(r.position).toEqual({ seq: 3, epoch: 'e1' }); // continues from here: 4 and 5 follow
    expect(seqs(r.deliver)).toEqual([4, 5]);
    b.clearHeld();
    expect(b.missing()).toBeNull();
  });
});

describe('OfflineQueue', () => {
  const pub = (order: number, room = 'r'): PendingPublish => ({
    order,
    room,
    data: order,
    idem: newIdem(),
    failures: 0,
    resolve: () => undefined,
    reject: () => undefined,
  });

  it('bounds new publishes but always takes back accepted ones, in call order', () => {
    const q = new OfflineQueue(2);
    expect(q.add(pub(2))).toBe(true);
    expect(q.add(pub(3))).toBe(true);
    expect(q.add(pub(4))).toBe(false);
    q.requeue(pub(1));
    expect(q.size).toBe(3);
    expect(q.take('r').map((p) => p.order)).toEqual([1, 2, 3]);
    expect(q.size).toBe(0);
  });

  it('idems are random and valid', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newIdem()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^sb-[A-Za-z0-9_-]{16}$/);
  });
});

describe('options and errors', () => {
  const WS = WebSocket as unknown as WebSocketConstructor;
  const bad = (url: unknown, o: Record<string, unknown> = {}): SwitchboardClientError => {
    try {
      resolveOptions(url, { WebSocket: WS, ...o } as never);
    } catch (err) {
      return err as SwitchboardClientError;
    }
    throw new Error('no error');
  };

  it('invalid URL or options throw synchronously with invalid_argument', () => {
    for (const [url, o] of [
      ['', {}],
      ['not a url', {}],
      ['ftp://x/ws', {}],
      [42, {}],
      ['ws://h/ws', { token: '' }],
      ['ws://h/ws', { token: 't', getToken: () => 't' }],
      ['ws://h/ws', { getToken: 'x' }],
      ['ws://h/ws', { backoff: { minMs: -1 } }],
      ['ws://h/ws', { backoff: { minMs: 100, maxMs: 10 } }],
      ['ws://h/ws', { backoff: { factor: 0.5 } }],
      ['ws://h/ws', { maxInFlight: 300 }],
      ['ws://h/ws', { maxInFlight: 0 }],
      ['ws://h/ws', { requestTimeoutMs: 0 }],
      ['ws://h/ws', { offlineQueue: { max: -1 } }],
      ['ws://h/ws', { watchdog: 5 }],
      ['ws://h/ws', { user: 'bad user' }],
      ['ws://h/ws', { WebSocket: 'nope' }],
    ] as const) {
      const err = bad(url, o);
      expect(err).toBeInstanceOf(SwitchboardClientError);
      expect(err.code).toBe('invalid_argument');
      expect(err.retryable).toBe(false);
    }
    expect(() => connect('ws://127.0.0.1:1/ws', { WebSocket: WS, maxInFlight: 1000 })).toThrow(SwitchboardClientError);
  });

  it('needs a WebSocket: Node 20 has no global one', () => {
    if ((globalThis as { WebSocket?: unknown }).WebSocket !== undefined) return;
    expect(() => connect('ws://127.0.0.1:1/ws')).toThrow(/no WebSocket implementation/);
  });

  it('defaults and URL normalisation', () => {
    const o = resolveOptions('http://localhost:8080/ws', { WebSocket: WS });
    expect(o.url).toBe('ws://localhost:8080/ws');
    expect(o.backoff).toEqual({ minMs: 500, maxMs: 20000, factor: 2 });
    expect(o.offlineQueueMax).toBe(1000);
    expect(o.maxInFlight).toBeLessThan(256);
    expect(o.watchdogGraceMs).toBe(10000);
    expect(resolveOptions('https://h/ws', { WebSocket: WS, watchdog: false }).watchdogGraceMs).toBeNull();
  });

  it('room names and publish arguments are checked', async () => {
    const c = connect('ws://127.0.0.1:1/ws', { WebSocket: WS, backoff: { minMs: 10_000 } });
    try {
      expect(() => c.room('bad room')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
      expect(() => c.room('r', { since: { seq: -1, epoch: 'e' } })).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
      const room = c.room('ok');
      expect(c.room('ok')).toBe(room);
      await expect(room.publish(undefined as never)).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(room.publish(1, { idem: 'has space' })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(room.publish(1, { event: 'has space' })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(room.publish(1, { event: '' })).rejects.toMatchObject({ code: 'invalid_argument' });
      expect(c.room('private-App.Models.User.1').name).toBe('private-App.Models.User.1');
      expect(() => c.room('r'.repeat(165))).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
      await expect(room.publish('x'.repeat(70_000))).rejects.toMatchObject({ code: 'frame_too_large' });
      await expect(room.history({ before: 1, after: 2 })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(room.history({ limit: 0 })).rejects.toMatchObject({ code: 'invalid_argument' });
    } finally {
      c.close();
    }
  });
});

describe('browser safety', () => {
  it('src/client imports nothing Node-only', () => {
    const dir = fileURLToPath(new URL('../../src/client/', import.meta.url));
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)) {
        const spec = m[3]!;
        const typeOnly = m[2] !== undefined;
        expect(spec, `${file} imports ${spec}`).toMatch(/^\.\.?\//);
        if (!typeOnly) visit(join(file, '..', spec.replace(/\.js$/, '.ts')));
      }
      expect(text, file).not.toMatch(/\brequire\(|from 'node:|from 'ws'|\bBuffer\b|process\./);
    };
    for (const f of files) visit(join(dir, f));
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      expect(text.split('\n').length, `${f} is under 400 lines`).toBeLessThan(400);
    }
  });
});
