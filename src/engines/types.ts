/**
 * Types shared by every engine. A room is always addressed together with its tenant:
 * nothing in Switchboard crosses tenants, so no engine API takes a room without one.
 */

/** A JSON value as carried in message payloads (`data`). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A room inside a tenant. Both parts are validated names (see protocol/names.ts). */
export interface RoomRef {
  readonly tenant: string;
  readonly room: string;
}

/** A room message as sequenced by the RoomLog and stored in history. */
export interface RoomMessage {
  readonly tenant: string;
  readonly room: string;
  /** Contiguous per room and epoch, starting at 1. */
  readonly seq: number;
  /** Identifies one continuous run of `seq`; changes only if the sequence had to be restarted. */
  readonly epoch: string;
  /** User id of the publisher (`"server"` for HTTP/backend publishes unless they name one). */
  readonly from: string;
  /** Server timestamp (ms since the Unix epoch) assigned when the seq was assigned. */
  readonly ts: number;
  readonly data: Json;
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
