/**
 * Builds complete, unmasked WebSocket text frames (RFC 6455 §5.2) for server-to-client traffic.
 * A server frame carries no mask, so the same bytes can be written to every member of a room:
 * that is what "encode once" means at the wire level.
 */
export function textFrame(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = body.length;
  let headerLen: number;
  if (len < 126) headerLen = 2;
  else if (len < 65_536) headerLen = 4;
  else headerLen = 10;
  const frame = Buffer.allocUnsafe(headerLen + len);
  frame[0] = 0x81; // FIN + opcode 1 (text)
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
