/**
 * A minimal WebSocket client on a raw TCP socket: handshake, masked text frames out, and the ability to
 * stop reading entirely (a slow consumer), which a normal client library does not offer.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawWs {
  readonly socket: Socket;
  sendText(text: string): void;
  /** Stop reading from the socket: the server's writes pile up in kernel and user-space buffers. */
  pause(): void;
  /** Bytes received so far after the handshake. */
  received(): number;
  closed: Promise<void>;
}

export function openRawWs(port: number, path = '/ws'): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let handshake = '';
    let upgraded = false;
    let bytes = 0;
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        bytes += chunk.length;
        return;
      }
      handshake += chunk.toString('latin1');
      const end = handshake.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!handshake.startsWith('HTTP/1.1 101')) {
        reject(new Error(`upgrade refused: ${handshake.split('\r\n')[0]}`));
        socket.destroy();
        return;
      }
      upgraded = true;
      bytes += Buffer.byteLength(handshake.slice(end + 4), 'latin1');
      resolve({
        socket,
        sendText(text: string) {
          const payload = Buffer.from(text, 'utf8');
          const mask = randomBytes(4);
          const len = payload.length;
          const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
          const masked = Buffer.alloc(len);
          for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
          socket.write(Buffer.concat([header, mask, masked]));
        },
        pause() {
          socket.pause();
        },
        received: () => bytes,
        closed,
      });
    });
  });
}
