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
  const w: WireMessage = { room: m.room, seq: m.seq, epoch: m.epoch, from: m.from, ts: m.ts, data: m.data };
  if (m.event === undefined && m.key === undefined) return w;
  // Field order as before `key` existed: data last.
  const { data, ...head } = w;
  return { ...head, ...(m.event !== undefined ? { event: m.event } : {}), ...(m.key !== undefined ? { key: m.key } : {}), data };
}

/** The `message` frame of a room message, encoded once and shared by every local member. */
export function messageFrame(m: Readonly<WireMessage>): Buffer {
  return wireFrame({ type: 'message', ...toWire(m) });
}
