import type { ServerFrame, WireMessage } from './wire.js';
import { textFrame } from './wsframe.js';

/**
 * Encoding of server frames, once per frame: the JSON text, and the complete WebSocket frame that is written
 * unchanged to every member. `toWire` takes any message with the wire fields (the server's RoomMessage has
 * more: tenant, idempotency id) and keeps exactly the wire fields.
 */

/** JSON text of a server frame. */
export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** A server frame as ready-to-write WebSocket bytes. */
export function wireFrame(frame: ServerFrame): Buffer {
  return textFrame(encodeFrame(frame));
}

/** Keeps exactly the wire fields; `event` and `key` only when the message has them (v1 frames without them are unchanged). */
export function toWire(m: Readonly<WireMessage>): WireMessage {
  const { room, seq, epoch, from, ts, event, key, data } = m;
  if (event === undefined && key === undefined) return { room, seq, epoch, from, ts, data };
  return { room, seq, epoch, from, ts, ...(event !== undefined ? { event } : {}), ...(key !== undefined ? { key } : {}), data };
}

/**
 * The last message `messageFrame` encoded, and its frame. A room asks each of its codecs once per message, and a
 * codec built on the v1 frame (gateway/compression.ts) then gets it without encoding the JSON a second time. Room
 * messages are never changed after they are made, so the object is the key.
 */
let lastMessage: Readonly<WireMessage> | null = null;
let lastFrame: Buffer | null = null;

/** The `message` frame of a room message, encoded once and shared by every local member. */
export function messageFrame(m: Readonly<WireMessage>): Buffer {
  if (m === lastMessage) return lastFrame!;
  const frame = wireFrame({ type: 'message', ...toWire(m) });
  lastMessage = m;
  lastFrame = frame;
  return frame;
}
