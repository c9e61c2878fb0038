/**
 * Types shared by every engine. A room is always addressed together with its tenant:
 * nothing in Switchboard crosses tenants, so no engine API takes a room without one.
 */
import type { Json, WireMessage } from '../protocol/wire.js';

/** JSON values are a wire type (protocol/wire.ts); re-exported for the engines. */
export type { Json };

/** A room inside a tenant. Both parts are validated names (see protocol/names.ts). */
export interface RoomRef {
  readonly tenant: string;
  readonly room: string;
}

/**
 * A room message as sequenced by the RoomLog and stored in history: the wire message (protocol/wire.ts:
 * room, seq, epoch, from, ts, data) with the tenant and the publisher's idempotency id.
 */
export interface RoomMessage extends Readonly<WireMessage> {
  readonly tenant: string;
  /** Client idempotency id, if the publisher gave one. */
  readonly idem?: string;
}

/** The position of a room's sequence. `seq` 0 means "no message yet". */
export interface RoomPosition {
  readonly seq: number;
  readonly epoch: string;
}

/** Stable key for maps keyed by room. Tenant and room names cannot contain "/". */
export function roomKey(ref: RoomRef): string {
  return `${ref.tenant}/${ref.room}`;
}
