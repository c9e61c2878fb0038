/**
 * The benchmarks' cheap WebSocket client on raw TCP sockets: HTTP upgrade, masked client frames, server frames
 * parsed in place and classified by the first bytes of their type. Used by the load generator (loadgen.mjs).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export const T_CHAR = 9; // offset of the first character of the type value in `{"type":"...`

/** The upgrade request; `headers` adds header lines (each ending in CRLF), e.g. an extension offer. */
export function upgradeRequest(port, path = '/ws', headers = '') {
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`,
  );
}

/** A masked client text frame (RFC 6455 §5.3), with a random masking key. */
export function clientFrame(text) {
  const body = Buffer.from(text, 'utf8');
  const len = body.length;
  const hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = Buffer.allocUnsafe(hl + 4 + len);
  f[0] = 0x81;
  if (len < 126) f[1] = 0x80 | len;
  else if (len < 65536) {
    f[1] = 0x80 | 126;
    f.writeUInt16BE(len, 2);
  } else {
    f[1] = 0x80 | 127;
    f.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    f.writeUInt32BE(len >>> 0, 6);
  }
  const m = (Math.random() * 0x100000000) >>> 0;
  f.writeUInt32BE(m, hl);
  const k0 = f[hl],
    k1 = f[hl + 1],
    k2 = f[hl + 2],
    k3 = f[hl + 3];
  const o = hl + 4;
  for (let i = 0; i < len; i++) {
    const k = (i & 3) === 0 ? k0 : (i & 3) === 1 ? k1 : (i & 3) === 2 ? k2 : k3;
    f[o + i] = body[i] ^ k;
  }
  return f;
}

export const PONG = '{"type":"pong"}';

/**
 * One raw connection. `h` receives onOpen(c), onFrame(c, opcode, buf, start, len, rsv1), onRefused(c, status,
 * retryAfterS), onClose(c, hadError). Frames split over TCP chunks are reassembled without quadratic copying.
 * `rsv1` is set on a frame compressed with permessage-deflate (only when the upgrade offered it; `c.deflate`
 * says whether the server took the offer).
 */
export class RawWs {
  constructor(idx, h) {
    this.idx = idx;
    this.h = h;
    this.sock = null;
    this.handshake = true;
    this.hsBuf = null;
    this.pend = null;
    this.pendLen = 0;
    this.need = 0;
    this.open = false;
    this.closeCode = 0;
    this.deflate = false;
  }

  /**
   * `headers`: extra upgrade header lines. `readBuffer` (bytes): read the socket `readBuffer` bytes at a time
   * (net's `onread`) instead of Node's 64 KiB chunks, so a reader paused with `sock.pause()` takes little at a
   * time and the kernel's buffers, not Node's, hold what it has not read.
   */
  start(port, localAddress, path = '/ws', { headers = '', readBuffer = 0 } = {}) {
    const onData = (c) => (this.handshake ? this.onHandshake(c) : this.onFrames(c));
    const s = net.connect({
      port,
      host: '127.0.0.1',
      localAddress,
      // The buffer is reused by the next read: a frame left incomplete keeps a reference, so copy it.
      ...(readBuffer > 0 ? { onread: { buffer: Buffer.allocUnsafe(readBuffer), callback: (n, buf) => onData(Buffer.from(buf.subarray(0, n))) } } : {}),
    });
    this.sock = s;
    s.setNoDelay(true);
    s.on('connect', () => {
      this.h.onTcp?.(this);
      s.write(upgradeRequest(port, path, headers));
    });
    if (readBuffer === 0) s.on('data', onData);
    s.on('error', (e) => {
      this.error = e.code ?? e.message;
    });
    s.on('close', (hadError) => {
      this.open = false;
      this.h.onClose(this, hadError);
    });
  }

  onHandshake(chunk) {
    const buf = this.hsBuf === null ? chunk : Buffer.concat([this.hsBuf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      this.hsBuf = buf;
      return;
    }
    this.hsBuf = null;
    const head = buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    if (status !== 101) {
      const ra = /retry-after:\s*(\d+)/i.exec(head);
      this.h.onRefused(this, status, ra ? Number(ra[1]) : 1);
      this.sock.destroy();
      return;
    }
    this.handshake = false;
    this.open = true;
    this.deflate = /^sec-websocket-extensions:\s*permessage-deflate/im.test(head);
    this.h.onOpen(this);
    if (buf.length > end + 4) this.onFrames(buf.subarray(end + 4));
  }

  onFrames(chunk) {
    let buf;
    if (this.pend !== null) {
      this.pend.push(chunk);
      this.pendLen += chunk.length;
      if (this.pendLen < this.need) return;
      buf = Buffer.concat(this.pend, this.pendLen);
      this.pend = null;
    } else {
      buf = chunk;
    }
    const n = buf.length;
    let off = 0;
    let need;
    for (;;) {
      const avail = n - off;
      if (avail < 2) {
        need = 2;
        break;
      }
      let len = buf[off + 1] & 127;
      let hl = 2;
      if (len === 126) {
        if (avail < 4) {
          need = 4;
          break;
        }
        len = buf.readUInt16BE(off + 2);
        hl = 4;
      } else if (len === 127) {
        if (avail < 10) {
          need = 10;
          break;
        }
        len = buf.readUInt32BE(off + 2) * 4294967296 + buf.readUInt32BE(off + 6);
        hl = 10;
      }
      if (avail < hl + len) {
        need = hl + len;
        break;
      }
      const op = buf[off] & 15;
      if (op === 8) {
        this.closeCode = len >= 2 ? buf.readUInt16BE(off + hl) : 1005;
        this.h.onServerClose?.(this, this.closeCode);
        this.sock.destroy();
        return;
      }
      this.h.onFrame(this, op, buf, off + hl, len, (buf[off] & 0x40) !== 0);
      off += hl + len;
    }
    if (off < n) {
      this.pend = [off === 0 ? buf : buf.subarray(off)];
      this.pendLen = n - off;
      this.need = need;
    }
  }

  send(text) {
    this.sock.write(clientFrame(text));
  }
}

/** First character (and a second one to disambiguate) of a server frame's type, without parsing JSON. */
export function frameType(buf, p, len) {
  if (len < 12 || buf[p] !== 0x7b || buf[p + 8] !== 0x22) return '?';
  const c = buf[p + T_CHAR];
  switch (c) {
    case 0x6d: // m
      return 'message';
    case 0x6a: // j
      return 'joined';
    case 0x61: // a
      return 'ack';
    case 0x65: // e
      return 'error';
    case 0x63: // c
      return 'connected';
    case 0x6e: // n
      return 'notice';
    case 0x70: {
      const d = buf[p + T_CHAR + 1];
      return d === 0x69 ? 'ping' : d === 0x72 ? 'presence' : d === 0x6f ? 'pong' : '?';
    }
    default:
      return '?';
  }
}
