/**
 * A minimal WebSocket client on a raw TCP socket: handshake (with any extra headers), masked text frames
 * out, hand-made frames of any shape (to break the protocol on purpose), the server's frames parsed
 * (text frames counted or kept, the close frame's code and reason), and the ability to stop reading
 * entirely (a slow consumer) and start again, which a normal client library does not offer.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawFrameOptions {
  /** Default 0x1 (text). */
  opcode?: number;
  /** Default true. */
  fin?: boolean;
  /** The three RSV bits as a number 0–7 (default 0). */
  rsv?: number;
  /** Client frames must be masked (default true). */
  masked?: boolean;
}

export interface CloseFrame {
  code: number;
  reason: string;
}

export interface RawWs {
  readonly socket: Socket;
  /** The upgrade response head (status line and headers). */
  readonly handshake: string;
  sendText(text: string): void;
  /** Writes one frame exactly as described, valid or not. */
  sendFrame(payload: Buffer, options?: RawFrameOptions): void;
  /** Writes several text frames in one TCP write (pipelining that arrives in one read on the server). */
  sendTexts(texts: string[]): void;
  /** Stop reading from the socket: the server's writes pile up in kernel and user-space buffers. */
  pause(): void;
  /** Read again after `pause()`. */
  resume(): void;
  /** Bytes received so far after the handshake. */
  received(): number;
  /** Text frames received so far (their payloads are kept only with `keepText`). */
  textFrames(): number;
  /** The text frames' payloads, in order (with `keepText`). */
  readonly texts: string[];
  /** The text frames as they came, payload bytes and RSV1 (set: a permessage-deflate message), in order (with `keepFrames`). */
  readonly frames: { readonly rsv1: boolean; readonly payload: Buffer }[];
  /** The server's close frame, once it arrived. */
  closeFrame(): CloseFrame | null;
  closed: Promise<void>;
}

export interface RawWsOptions {
  /** Extra request headers, e.g. `Sec-WebSocket-Protocol`. */
  headers?: Record<string, string>;
  /** Keep every text frame's payload in `texts` (off by default: a flood test receives megabytes). */
  keepText?: boolean;
  /** Keep every text frame's payload bytes and RSV1 bit in `frames` (for compressed frames, which are not text). */
  keepFrames?: boolean;
}

/** Builds one client frame: masked unless told otherwise, any opcode, FIN and RSV bits. */
export function buildFrame(payload: Buffer, options: RawFrameOptions = {}): Buffer {
  const { opcode = 0x1, fin = true, rsv = 0, masked = true } = options;
  const len = payload.length;
  const first = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const maskBit = masked ? 0x80 : 0;
  let header: Buffer;
  if (len < 126) header = Buffer.from([first, maskBit | len]);
  else if (len < 65_536) header = Buffer.from([first, maskBit | 126, len >> 8, len & 0xff]);
  else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = maskBit | 127;
    header.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    header.writeUInt32BE(len >>> 0, 6);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, body]);
}

export function openRawWs(port: number, path = '/ws', options: RawWsOptions = {}): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    let upgraded = false;
    let bytes = 0;
    let texts = 0;
    const kept: string[] = [];
    const keptFrames: RawWs['frames'][number][] = [];
    let close: CloseFrame | null = null;
    let pending: Buffer = Buffer.alloc(0);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);

    /** Parses the server's (unmasked, unfragmented) frames out of what has arrived. */
    const parse = (chunk: Buffer): void => {
      bytes += chunk.length;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      for (;;) {
        if (pending.length - at < 2) break;
        const opcode = pending[at]! & 0x0f;
        let len = pending[at + 1]! & 0x7f;
        let hl = 2;
        if (len === 126) {
          if (pending.length - at < 4) break;
          len = pending.readUInt16BE(at + 2);
          hl = 4;
        } else if (len === 127) {
          if (pending.length - at < 10) break;
          len = pending.readUInt32BE(at + 2) * 2 ** 32 + pending.readUInt32BE(at + 6);
          hl = 10;
        }
        if (pending.length - at < hl + len) break;
        const payload = pending.subarray(at + hl, at + hl + len);
        if (opcode === 0x1) {
          texts++;
          if (options.keepText === true) kept.push(payload.toString('utf8'));
          if (options.keepFrames === true) keptFrames.push({ rsv1: (pending[at]! & 0x40) !== 0, payload: Buffer.from(payload) });
        } else if (opcode === 0x8) {
          close = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString('utf8') };
        }
        at += hl + len;
      }
      pending = at === pending.length ? Buffer.alloc(0) : pending.subarray(at);
    };

    socket.on('connect', () => {
      const extra = Object.entries(options.headers ?? {})
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        parse(chunk);
        return;
      }
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!head.startsWith('HTTP/1.1 101')) {
        reject(Object.assign(new Error(`upgrade refused: ${head.split('\r\n')[0]}`), { response: head }));
        socket.destroy();
        return;
      }
      upgraded = true;
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      const handshake = head.slice(0, end);
      if (rest.length > 0) parse(rest);
      resolve({
        socket,
        handshake,
        sendText(text: string) {
          socket.write(buildFrame(Buffer.from(text, 'utf8')));
        },
        sendFrame(payload: Buffer, frameOptions?: RawFrameOptions) {
          socket.write(buildFrame(payload, frameOptions));
        },
        sendTexts(list: string[]) {
          socket.write(Buffer.concat(list.map((t) => buildFrame(Buffer.from(t, 'utf8')))));
        },
        pause() {
          socket.pause();
        },
        resume() {
          socket.resume();
        },
        received: () => bytes,
        textFrames: () => texts,
        texts: kept,
        frames: keptFrames,
        closeFrame: () => close,
        closed,
      });
    });
  });
}
