/**
 * Builds complete, unmasked WebSocket text frames (RFC 6455 §5.2) for server-to-client traffic, and reads
 * back the header of such a frame. A server frame carries no mask, so the same bytes can be written to every
 * member of a room: that is what "encode once" means at the wire level.
 */

/**
 * A text frame around `payload`. `compressed`: the payload is a permessage-deflate message (RFC 7692), so the
 * frame has RSV1 set (protocol/deflate.ts).
 */
export function textFrame(payload: string | Buffer, compressed = false): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = body.length;
  let headerLen: number;
  if (len < 126) headerLen = 2;
  else if (len < 65_536) headerLen = 4;
  else headerLen = 10;
  const frame = Buffer.allocUnsafe(headerLen + len);
  frame[0] = compressed ? 0xc1 : 0x81; // FIN (+ RSV1) + opcode 1 (text)
  if (len < 126) {
    frame[1] = len;
  } else if (len < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  body.copy(frame, headerLen);
  return frame;
}

/** What a frame built by `textFrame` holds: its payload (a view, not a copy) and whether it is compressed. */
export interface TextPayload {
  readonly payload: Buffer;
  readonly compressed: boolean;
}

/**
 * The payload of one complete, unfragmented, unmasked text frame (as `textFrame` builds them); null for any
 * other frame, which is then written as it is.
 */
export function readTextFrame(frame: Buffer): TextPayload | null {
  if (frame.length < 2 || (frame[0]! & 0xbf) !== 0x81 || (frame[1]! & 0x80) !== 0) return null;
  let len = frame[1]!;
  let at = 2;
  if (len === 126) {
    len = frame.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    len = frame.readUInt32BE(2) * 2 ** 32 + frame.readUInt32BE(6);
    at = 10;
  }
  if (at + len !== frame.length) return null;
  return { payload: frame.subarray(at), compressed: (frame[0]! & 0x40) !== 0 };
}
