/**
 * textFrame wire compatibility: frames built by src/protocol/wsframe.ts are parsed by the `ws`
 * library's own client-side Receiver (which rejects masked server frames) into the exact payload.
 */
import * as ws from 'ws';
import { describe, expect, it } from 'vitest';
import { textFrame } from '../../src/protocol/wsframe.js';
import { splitFrame } from './ws-frames.js';

/** The part of ws's Receiver (lib/receiver.js, not in @types/ws) used here. */
interface WsReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  write(chunk: Buffer): boolean;
}
const Receiver = (ws as unknown as { Receiver: new (options?: { isServer?: boolean }) => WsReceiver }).Receiver;

/** Feeds the bytes to a fresh client-side Receiver in `chunkSize` pieces; resolves with the messages. */
async function parse(bytes: Buffer, expected: number, chunkSize = bytes.length): Promise<Array<{ data: Buffer; isBinary: boolean }>> {
  const receiver = new Receiver({ isServer: false });
  const messages: Array<{ data: Buffer; isBinary: boolean }> = [];
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    receiver.on('message', (data, isBinary) => {
      messages.push({ data: Buffer.from(data), isBinary });
      if (messages.length === expected) resolve(messages);
    });
    for (let i = 0; i < bytes.length; i += Math.max(1, chunkSize)) receiver.write(bytes.subarray(i, i + chunkSize));
    setTimeout(() => reject(new Error(`ws Receiver emitted ${messages.length} of ${expected} messages`)), 2_000).unref();
  });
}

/** A payload of exactly `len` bytes with varied content. */
function payload(len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = 0x20 + (i % 95);
  return b;
}

const expectedHeader = (len: number): number => (len < 126 ? 2 : len < 65_536 ? 4 : 10);

describe('textFrame', () => {
  for (const len of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
    it(`a ${len}-byte payload is parsed by ws's Receiver`, async () => {
      const body = payload(len);
      const frame = textFrame(body);
      expect(frame.length).toBe(expectedHeader(len) + len);
      expect(splitFrame(frame).headerLength).toBe(expectedHeader(len));
      const [m] = await parse(frame, 1);
      expect(m!.isBinary).toBe(false);
      expect(m!.data.equals(body)).toBe(true);
    });
  }

  it('string payloads are measured in UTF-8 bytes, not characters', async () => {
    const text = 'é'.repeat(63) + '😀'; // 63 characters + 1 astral: 130 bytes, so a 16-bit length
    const frame = textFrame(text);
    expect(splitFrame(frame).headerLength).toBe(4);
    expect(frame.readUInt16BE(2)).toBe(Buffer.byteLength(text));
    const [m] = await parse(frame, 1);
    expect(m!.data.toString('utf8')).toBe(text);
  });

  it('frames concatenated and split at arbitrary boundaries parse as separate messages', async () => {
    const bodies = [payload(0), payload(125), payload(126), payload(70_000), Buffer.from('{"type":"ping"}')];
    const stream = Buffer.concat(bodies.map((b) => textFrame(b)));
    for (const chunk of [7, 1000, stream.length]) {
      const messages = await parse(stream, bodies.length, chunk);
      expect(messages.map((m) => m.data.length)).toEqual(bodies.map((b) => b.length));
      messages.forEach((m, i) => expect(m.data.equals(bodies[i]!)).toBe(true));
    }
  });

  it('frames fed one byte at a time parse (every header split point)', async () => {
    const bodies = [payload(0), payload(3), payload(125), payload(126), payload(300)];
    const messages = await parse(Buffer.concat(bodies.map((b) => textFrame(b))), bodies.length, 1);
    messages.forEach((m, i) => expect(m.data.equals(bodies[i]!)).toBe(true));
  });

  it('frames are unmasked final text frames', () => {
    for (const len of [0, 200, 70_000]) {
      const f = textFrame(payload(len));
      expect(f[0]).toBe(0x81);
      expect(f[1]! & 0x80).toBe(0);
    }
  });
});
