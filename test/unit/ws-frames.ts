/**
 * Test helper: decodes the complete, unmasked server-to-client WebSocket text frames built by
 * src/protocol/wsframe.ts (RFC 6455 §5.2) back into their JSON payload. Strict on purpose: a frame
 * that is not FIN + text, carries a mask, or whose length field disagrees with its size throws.
 */
export interface DecodedFrame {
  /** Header bytes (2, 4 or 10). */
  readonly headerLength: number;
  readonly payload: Buffer;
}

export function splitFrame(frame: Buffer): DecodedFrame {
  if (frame.length < 2) throw new Error(`frame too short: ${frame.length} bytes`);
  if (frame[0] !== 0x81) throw new Error(`expected FIN + text opcode (0x81), got 0x${frame[0]!.toString(16)}`);
  const second = frame[1]!;
  if ((second & 0x80) !== 0) throw new Error('server frames must not be masked');
  let len = second & 0x7f;
  let headerLength = 2;
  if (len === 126) {
    len = frame.readUInt16BE(2);
    headerLength = 4;
  } else if (len === 127) {
    len = frame.readUInt32BE(2) * 2 ** 32 + frame.readUInt32BE(6);
    headerLength = 10;
  }
  if (frame.length !== headerLength + len) {
    throw new Error(`length field says ${len} payload bytes, frame has ${frame.length - headerLength}`);
  }
  return { headerLength, payload: frame.subarray(headerLength) };
}

/** The JSON value carried by one text frame. */
export function decodeFrame<T = Record<string, unknown>>(frame: Buffer): T {
  return JSON.parse(splitFrame(frame).payload.toString('utf8')) as T;
}
