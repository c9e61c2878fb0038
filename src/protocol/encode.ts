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

/** Keeps exactly the wire fields; `event` only when the message has one (v1 frames without it are unchanged). */
export function toWire(m: Readonly<WireMessage>): WireMessage {
  if (m.event === undefined) return { room: m.room, seq: m.seq, epoch: m.epoch, from: m.from, ts: m.ts, data: m.data };
  return { room: m.room, seq: m.seq, epoch: m.epoch, from: m.from, ts: m.ts, event: m.event, data: m.data };
}

/** The `message` frame of a room message, encoded once and shared by every local member. */
export function messageFrame(m: Readonly<WireMessage>): Buffer {
  return wireFrame({ type: 'message', ...toWire(m) });
}
