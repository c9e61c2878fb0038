/** Names of rooms, tenants, users and idempotency ids. Kept conservative so they map onto NATS
 * subject tokens and Redis keys without escaping. */
const ROOM = /^[A-Za-z0-9_\-:@~]{1,128}$/;
const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
const USER = /^[A-Za-z0-9_\-.:@~]{1,128}$/;
const IDEM = /^[\x21-\x7e]{1,128}$/;

export const isRoomName = (s: unknown): s is string => typeof s === 'string' && ROOM.test(s);
export const isTenantName = (s: unknown): s is string => typeof s === 'string' && TENANT.test(s);
export const isUserId = (s: unknown): s is string => typeof s === 'string' && USER.test(s);
export const isIdemId = (s: unknown): s is string => typeof s === 'string' && IDEM.test(s);

export const ROOM_NAME_RULE = '1–128 characters of A–Z a–z 0–9 _ - : @ ~';
export const TENANT_NAME_RULE = '1–64 characters of A–Z a–z 0–9 _ -';
export const IDEM_RULE = '1–128 printable ASCII characters';
export const USER_ID_RULE = '1–128 characters of A–Z a–z 0–9 _ - . : @ ~';

/** TEMP until merged with msg-event. */
const EVENT = /^[\x21-\x7e]{1,200}$/;
export const isEventName = (s: unknown): s is string => typeof s === 'string' && EVENT.test(s);
export const EVENT_NAME_RULE = '1–200 printable ASCII characters';
