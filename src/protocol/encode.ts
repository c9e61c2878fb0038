import type { RoomMessage } from '../engines/types.js';
import type { ServerFrame, WireMessage } from './wire.js';
import { textFrame } from './wsframe.js';

/** JSON text of a server frame. */
export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** A server frame as ready-to-write WebSocket bytes. */
export function wireFrame(frame: ServerFrame): Buffer {
  return textFrame(encodeFrame(frame));
}

export function toWire(m: RoomMessage): WireMessage {
  return { room: m.room, seq: m.seq, epoch: m.epoch, from: m.from, ts: m.ts, data: m.data };
}

/** The `message` frame of a room message, encoded once and shared by every local member. */
export function messageFrame(m: RoomMessage): Buffer {
  return wireFrame({ type: 'message', ...toWire(m) });
}
