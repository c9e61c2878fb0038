/**
 * permessage-deflate (RFC 7692) for server frames that are compressed once and written to many connections.
 *
 * Each message is compressed on its own, with a fresh zlib context (the connection negotiated
 * `server_no_context_takeover`), so its compressed bytes do not depend on what else a connection got and one
 * copy serves every member. `Z_SYNC_FLUSH` ends the compressed data byte-aligned with an empty stored block
 * (`00 00 ff ff`), which RFC 7692 §7.2.1 removes from the frame and the receiver appends again.
 *
 * `joinDeflated` puts several pieces (compressed payloads and plain text) into one compressed message without
 * compressing anything again: a compressed piece keeps its `00 00 ff ff` tail inside the message (every piece
 * then starts at a byte boundary, and DEFLATE blocks may follow each other freely), plain text becomes stored
 * blocks (RFC 1951 §3.2.4: `00`, LEN and ~LEN little-endian, the bytes), and only the message's last tail is
 * removed. Back-references in a piece reach only into that piece, which the receiver's window holds.
 */
import { constants, deflateRawSync } from 'node:zlib';
import type { TextPayload } from './wsframe.js';

/** The empty stored block a sync flush ends with, removed from the end of each message (RFC 7692 §7.2.1). */
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);
/** Largest stored block (LEN is 16 bits). */
const MAX_STORED = 0xffff;

/** Window bits of the compressed messages: a connection that negotiated a smaller server window gets plain frames. */
export const DEFLATE_WINDOW_BITS = 15;

/** `payload` compressed on its own (a fresh context), without the final `00 00 ff ff`. */
export function deflateMessage(payload: Buffer): Buffer {
  const out = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH, windowBits: DEFLATE_WINDOW_BITS, memLevel: 8 });
  if (out.length < 4 || out.readUInt32BE(out.length - 4) !== 0x0000ffff) throw new Error('deflate: a sync flush did not end with 00 00 ff ff');
  return out.subarray(0, out.length - 4);
}

/**
 * One compressed message payload holding `pieces` in order with `separator` between each two: compressed
 * pieces as they are (their tails put back), plain ones and the separators as stored blocks.
 */
export function joinDeflated(pieces: readonly TextPayload[], separator: Buffer): Buffer {
  const out: Buffer[] = [];
  let plain: Buffer[] = [];
  let endsCompressed = false;
  const storePlain = (): void => {
    if (plain.length === 0) return;
    const text = plain.length === 1 ? plain[0]! : Buffer.concat(plain);
    plain = [];
    for (let at = 0; at < text.length; at += MAX_STORED) {
      const chunk = text.subarray(at, at + MAX_STORED);
      const header = Buffer.allocUnsafe(5);
      header[0] = 0x00; // BFINAL 0, BTYPE 00 (stored), then padding to the byte boundary
      header.writeUInt16LE(chunk.length, 1);
      header.writeUInt16LE(~chunk.length & 0xffff, 3);
      out.push(header, chunk);
    }
    endsCompressed = false;
  };
  pieces.forEach((piece, i) => {
    if (i > 0) plain.push(separator);
    if (!piece.compressed) {
      plain.push(piece.payload);
      return;
    }
    storePlain();
    out.push(piece.payload, TAIL);
    endsCompressed = true;
  });
  storePlain();
  // The message must end with an empty stored block, minus the 4 bytes the receiver appends: a compressed
  // piece's own tail, or the one byte of a new empty stored block's header.
  if (endsCompressed) out.pop();
  else out.push(Buffer.of(0x00));
  return Buffer.concat(out);
}
