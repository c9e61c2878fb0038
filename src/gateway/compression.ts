/**
 * permessage-deflate on protocol v1's connections (docs/operations.md §12): what the node offers in
 * the handshake, what a connection negotiated, and the room codec that compresses each room message once for
 * every member that negotiated it.
 *
 * `ws` only negotiates: the node writes its frames itself (gateway/outbox.ts), so ws never compresses (and never
 * allocates a deflate context). It inflates what a client sent compressed, with a zlib context it creates on the
 * first such frame and keeps until the close: idle connections hold none.
 */
import type { PerMessageDeflateOptions } from 'ws';
import { DEFLATE_WINDOW_BITS, deflateMessage } from '../protocol/deflate.js';
import { messageFrame } from '../protocol/encode.js';
import { readTextFrame, textFrame } from '../protocol/wsframe.js';
import { V1_CODEC, type RoomCodec } from '../rooms/room.js';

/** The `perMessageDeflate` options of protocol v1's WebSocketServer. */
export const DEFLATE_OFFER: PerMessageDeflateOptions = {
  // Required: each message is compressed on its own and the same bytes go to every member.
  serverNoContextTakeover: true,
  // The client compresses each message on its own too, so nothing depends on its earlier messages.
  clientNoContextTakeover: true,
  // ws compresses nothing itself: the node's frames are written by the outbox, never by ws.send.
  threshold: Number.MAX_SAFE_INTEGER,
};

/**
 * Whether the 101's `Sec-WebSocket-Extensions` (as ws wrote it, seen in the server's 'headers' event) lets
 * the node send shared compressed frames: permessage-deflate without context takeover on the server's side,
 * and no server window below DEFLATE_WINDOW_BITS (such a connection gets plain frames, always valid).
 */
export function sharesDeflate(headers: readonly string[]): boolean {
  const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
  if (line === undefined) return false;
  const params = line
    .slice(line.indexOf(':') + 1)
    .split(';')
    .map((p) => p.trim().toLowerCase());
  if (params[0] !== 'permessage-deflate' || !params.includes('server_no_context_takeover')) return false;
  const window = params.find((p) => p.startsWith('server_max_window_bits'));
  return window === undefined || Number(window.split('=')[1]) >= DEFLATE_WINDOW_BITS;
}

/**
 * Protocol v1's codec for connections that negotiated permessage-deflate: a room message whose JSON has at
 * least `thresholdBytes` bytes is compressed (once per room message: a room encodes once per codec) and sent
 * with RSV1; a smaller one, or one that does not shrink, as the plain frame. `counted` gets each compression's
 * JSON bytes and the bytes of the frame payload sent.
 */
export function deflateCodec(thresholdBytes: number, counted: (jsonBytes: number, sentBytes: number) => void): RoomCodec {
  return {
    ...V1_CODEC,
    message(m) {
      // The v1 frame (encoded once per message, shared with V1_CODEC's members): sent as it is when not compressed.
      const plain = messageFrame(m);
      const json = readTextFrame(plain)!.payload;
      if (json.length < thresholdBytes) return plain;
      const deflated = deflateMessage(json);
      const shrank = deflated.length < json.length;
      counted(json.length, shrank ? deflated.length : json.length);
      return shrank ? textFrame(deflated, true) : plain;
    },
  };
}
