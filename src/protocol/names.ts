/** Names of rooms, tenants, users, idempotency ids and message events. Room names may contain `.` (Pusher
 * channel names do); `roomToken` maps them onto one NATS subject token without one. Redis keys wrap
 * the room in `{tenant/room}`, and no name contains `{`, `}` or `/`. */
const ROOM = /^[A-Za-z0-9_\-:@~=,.;]{1,164}$/;
const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
const USER = /^[A-Za-z0-9_\-.:@~]{1,128}$/;
const IDEM = /^[\x21-\x7e]{1,128}$/;
const EVENT = /^[\x21-\x7e]{1,200}$/;

export const isRoomName = (s: unknown): s is string => typeof s === 'string' && ROOM.test(s);
export const isTenantName = (s: unknown): s is string => typeof s === 'string' && TENANT.test(s);
export const isUserId = (s: unknown): s is string => typeof s === 'string' && USER.test(s);
export const isIdemId = (s: unknown): s is string => typeof s === 'string' && IDEM.test(s);
export const isEventName = (s: unknown): s is string => typeof s === 'string' && EVENT.test(s);
/** A conflation key (`key` of a room message): the same alphabet as event names. */
export const isMessageKey = isEventName;

export const ROOM_NAME_RULE = '1–164 characters of A–Z a–z 0–9 _ - : @ ~ = , . ;';
export const TENANT_NAME_RULE = '1–64 characters of A–Z a–z 0–9 _ -';
export const IDEM_RULE = '1–128 printable ASCII characters';
export const USER_ID_RULE = '1–128 characters of A–Z a–z 0–9 _ - . : @ ~';
export const EVENT_NAME_RULE = '1–200 printable ASCII characters (no spaces)';
export const MESSAGE_KEY_RULE = EVENT_NAME_RULE;

/**
 * A room name as one NATS subject token: `.` (which would split the token) becomes `%`, which is not in
 * the room alphabet, so the mapping is injective; every other character is kept. Names without `.` (all
 * names before `.` was allowed) map to themselves, so existing subjects (e.g. the JetStream stream's
 * `<prefix>.<tenant>.<room>`) are unchanged. The result never contains `.`, `*`, `>` or whitespace.
 * Use it wherever a room name becomes a subject token.
 */
export const roomToken = (room: string): string => (room.includes('.') ? room.replaceAll('.', '%') : room);
