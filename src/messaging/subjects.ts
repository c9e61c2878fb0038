/**
 * Backplane subjects and payloads (node-to-node; independent of the broker, which only moves bytes).
 *   sb.r.<tenant>.<room>      room stream: sequenced messages and presence changes of one room (the room
 *                             as one token, `.` written as `%`: protocol/names.ts `roomToken`)
 *   sb.u.<tenant>.<user64>    direct messages to every connection of a user (user id base64url-encoded,
 *                             since user ids may contain '.')
 */
import type { Json, RoomMessage, RoomRef } from '../engines/types.js';
import { roomToken } from '../protocol/names.js';

export const roomSubject = (ref: RoomRef): string => `sb.r.${ref.tenant}.${roomToken(ref.room)}`;
export const userSubject = (tenant: string, user: string): string => `sb.u.${tenant}.${Buffer.from(user, 'utf8').toString('base64url')}`;

/** A sequenced message (`x`: the socket id it is not delivered to), or a user's first join / last leave (with the user's `info` on a Pusher presence join). */
export type RoomEnvelope = { k: 'm'; m: RoomMessage; x?: string } | { k: 'p'; kind: 'join' | 'leave'; user: string; at: number; info?: Json };

/**
 * A direct message to every connection of a user (`event`: its name, for Pusher's user events), or, with
 * `terminate`, the order to close them (Pusher's terminate_connections; protocol-v1 connections ignore it).
 */
export interface DirectEnvelope {
  from: string;
  ts: number;
  data: Json;
  event?: string;
  terminate?: true;
}

export function encodeEnvelope(e: RoomEnvelope | DirectEnvelope): Uint8Array {
  return Buffer.from(JSON.stringify(e), 'utf8');
}

export function decodeEnvelope<T>(payload: Uint8Array): T {
  return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as T;
}
