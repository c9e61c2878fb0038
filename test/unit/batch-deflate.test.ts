/**
 * Batch frames and compress-once joining (gateway/batch.ts, protocol/deflate.ts): joined compressed messages
 * inflate (with zlib, as ws and browsers do) to exactly the pieces joined by "\n", whatever mix of compressed and
 * plain pieces, including plain text over one stored block; the batcher, writing to a real loopback socket and
 * through the Outbox, keeps every frame in order, cuts batches at their size bound and reports the bytes written.
 */
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { constants, inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameBatcher } from '../../src/gateway/batch.js';
import { Outbox, type OutboxSink } from '../../src/gateway/outbox.js';
import { deflateMessage, joinDeflated } from '../../src/protocol/deflate.js';
import { readTextFrame, textFrame, type TextPayload } from '../../src/protocol/wsframe.js';
import { waitFor } from '../helpers/wait.js';

const NL = Buffer.from('\n');
const inflate = (payload: Buffer): string =>
  inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8');

const json = (i: number, size: number): string => JSON.stringify({ type: 'message', seq: i, data: { text: `piece ${i} `.repeat(Math.ceil(size / 10)) } });
const compressed = (text: string): TextPayload => ({ payload: deflateMessage(Buffer.from(text)), compressed: true });
const plain = (text: string): TextPayload => ({ payload: Buffer.from(text), compressed: false });

describe('joinDeflated', () => {
  const a = json(1, 2000);
  const b = json(2, 50);
  const c = json(3, 3000);
  const huge = json(4, 150_000); // over two stored blocks of 65,535 bytes
  const cases: [string, TextPayload[], string[]][] = [
    ['one compressed', [compressed(a)], [a]],
    ['compressed, compressed', [compressed(a), compressed(c)], [a, c]],
    ['plain, compressed', [plain(b), compressed(a)], [b, a]],
    ['compressed, plain', [compressed(a), plain(b)], [a, b]],
    ['compressed, plain over 64 KiB, compressed', [compressed(a), plain(huge), compressed(c)], [a, huge, c]],
    ['plain, plain, compressed, plain', [plain(b), plain(b), compressed(c), plain(b)], [b, b, c, b]],
  ];
  for (const [name, pieces, texts] of cases) {
    it(`${name}: inflates to the pieces joined by newlines`, () => {
      expect(inflate(joinDeflated(pieces, NL))).toBe(texts.join('\n'));
    });
  }

  it('a compressed message is smaller than its JSON and ends without the sync tail', () => {
    const d = deflateMessage(Buffer.from(c));
    expect(d.length).toBeLessThan(c.length / 3);
    expect(d.subarray(-4).equals(Buffer.from([0, 0, 0xff, 0xff]))).toBe(false);
    expect(inflate(d)).toBe(c);
  });
});

let server: Server;
const accepted: Socket[] = [];

beforeAll(async () => {
  server = createServer((s) => accepted.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});

afterAll(async () => {
  for (const s of accepted) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A loopback socket and what its peer received, parsed into frames (FIN + opcode byte, RSV1, payload). */
async function loopback(): Promise<{ socket: Socket; received(): number; frames(): { first: number; payload: Buffer }[] }> {
  const socket = createConnection({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  await once(socket, 'connect');
  await waitFor(() => accepted.some((a) => a.remotePort === socket.localPort), 2_000, 'accept');
  const peer = accepted.find((a) => a.remotePort === socket.localPort)!;
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  const frames = (): { first: number; payload: Buffer }[] => {
    const all = Buffer.concat(chunks);
    const out: { first: number; payload: Buffer }[] = [];
    for (let at = 0; at < all.length;) {
      let len = all[at + 1]! & 0x7f;
      let hl = 2;
      if (len === 126) [len, hl] = [all.readUInt16BE(at + 2), 4];
      else if (len === 127) [len, hl] = [all.readUInt32BE(at + 6), 10];
      out.push({ first: all[at]!, payload: all.subarray(at + hl, at + hl + len) });
      at += hl + len;
    }
    return out;
  };
  return { socket, received: () => chunks.reduce((n, c) => n + c.length, 0), frames };
}

/** Header bytes of an unmasked frame with this payload length. */
const header = (len: number): number => (len < 126 ? 2 : len < 65_536 ? 4 : 10);

/** The JSON lines a client reads from `frames` (compressed ones inflated, batches split). */
const lines = (frames: { first: number; payload: Buffer }[]): string[] =>
  frames.flatMap((f) => ((f.first & 0x40) !== 0 ? inflate(f.payload) : f.payload.toString('utf8')).split('\n'));

describe('FrameBatcher', () => {
  it('joins consecutive text frames in order, compressed ones compressed, cut at the size bound; other frames keep their place', async () => {
    const { socket, received, frames } = await loopback();
    const batches: number[] = [];
    const batcher = new FrameBatcher((n) => batches.push(n), 300);
    const texts = Array.from({ length: 12 }, (_, i) => json(i, i % 3 === 0 ? 3000 : 40));
    const queue = texts.map((t) => (t.length >= 1024 ? textFrame(deflateMessage(Buffer.from(t)), true) : textFrame(t)));
    const close = Buffer.from([0x88, 0x02, 0x03, 0xe8]); // a close frame (not text): never inside a batch
    queue.splice(6, 0, close);
    const written = batcher.write(socket, queue, 0, queue.length);
    await waitFor(() => received() === written, 2_000, 'every byte at the peer');
    const got = frames();
    expect(got.reduce((n, f) => n + header(f.payload.length) + f.payload.length, 0)).toBe(written);
    const at = got.findIndex((f) => f.first === 0x88);
    expect(lines(got.slice(0, at))).toEqual(texts.slice(0, 6));
    expect(lines(got.slice(at + 1))).toEqual(texts.slice(6));
    const textFrames = got.filter((f) => f.first !== 0x88);
    // Compressed batches carry a few bytes of framing per piece (stored block headers, sync tails) over the bound.
    for (const f of textFrames) if (lines([f]).length > 1) expect(f.payload.length).toBeLessThanOrEqual(300 + 64);
    expect(textFrames.length).toBeGreaterThan(2); // cut at the bound, and at the close frame
    expect(textFrames.some((f) => f.first === 0xc1 && lines([f]).length > 1)).toBe(true);
    const singles = textFrames.filter((f) => lines([f]).length === 1).length;
    expect(batches.length).toBe(textFrames.length - singles);
    expect(batches.reduce((n, b) => n + b, 0) + singles).toBe(texts.length);
    socket.destroy();
  });

  it('a batching sink of the Outbox gets one frame per write and the bytes written are reported; a sink that did not opt in gets every frame', async () => {
    const a = await loopback();
    const b = await loopback();
    const reports: [number, number][] = [];
    const outbox = new Outbox(1 << 20, (writes, bytes) => reports.push([writes, bytes]), undefined, new FrameBatcher(() => undefined));
    const sink = (socket: Socket, batch: boolean): OutboxSink => ({
      socket,
      queue: null,
      queuedBytes: 0,
      dead: false,
      overSince: 0,
      blocked: false,
      batch,
      onSlow: () => undefined,
    });
    const batching = sink(a.socket, true);
    const single = sink(b.socket, false);
    const texts = Array.from({ length: 5 }, (_, i) => json(i, 30));
    for (const t of texts) {
      outbox.enqueue(batching, textFrame(t));
      outbox.enqueue(single, textFrame(t));
    }
    await waitFor(() => a.frames().length === 1 && b.frames().length === 5, 2_000, 'the flush at both peers');
    expect(lines(a.frames())).toEqual(texts);
    expect(lines(b.frames())).toEqual(texts);
    expect(a.frames()[0]!.payload.toString()).toBe(texts.join('\n'));
    const wire = [...a.frames(), ...b.frames()].reduce((n, f) => n + header(f.payload.length) + f.payload.length, 0);
    expect(reports).toEqual([[2, wire]]);
    a.socket.destroy();
    b.socket.destroy();
  });
});

describe('readTextFrame', () => {
  it('reads back what textFrame builds, for every length form, and refuses other frames', () => {
    for (const len of [0, 125, 126, 65_535, 65_536]) {
      const body = Buffer.alloc(len, 0x61);
      for (const compressed of [false, true]) {
        const t = readTextFrame(textFrame(body, compressed));
        expect(t?.compressed).toBe(compressed);
        expect(t?.payload.equals(body)).toBe(true);
      }
    }
    expect(readTextFrame(Buffer.from([0x88, 0x02, 0x03, 0xe8]))).toBeNull(); // close
    expect(readTextFrame(Buffer.from([0x01, 0x01, 0x61]))).toBeNull(); // not FIN
    expect(readTextFrame(Buffer.from([0x81, 0x05, 0x61]))).toBeNull(); // truncated
  });
});
