/**
 * Pusher Channels protocol 7, as spoken on `/app/:key` (docs/pusher.md): the frames a server sends, the error
 * and close codes, the channel-name rule and the event names. Wire types and encoders only; the state machine
 * is src/pusher/session.ts.
 *
 * Every frame is a JSON object `{event, channel?, data}`. Pusher sends `data` as a JSON *string* for events
 * (clients parse it); `pusher:error` and `pusher:subscription_error` carry an object. Every encoder returns a
 * complete WebSocket text frame (wsframe.ts), written to the socket as it is, like protocol v1's frames.
 */
import type { Json } from './wire.js';
import { textFrame } from './wsframe.js';

/** The only protocol version served (pusher-js 4+ and every current SDK speak it). */
export const PUSHER_PROTOCOL = 7;

/**
 * Close codes (Pusher's ranges): 4000–4099 the client must not reconnect; 4100–4199 reconnect after backing
 * off; 4200–4299 reconnect at once.
 */
export const PusherClose = {
  /** The app key is not known to this node. */
  appNotFound: 4001,
  /** Over the app's connection limit. */
  overQuota: 4004,
  /** The path is not `/app/:key`. */
  pathNotFound: 4005,
  /** The protocol version is not a number. */
  invalidVersion: 4006,
  /** A protocol version other than 7. */
  unsupportedVersion: 4007,
  /** No `protocol` query parameter. */
  noVersion: 4008,
  /** Repeated invalid frames (not JSON, not an object, no event name): Pusher's "unauthorized connection". */
  protocolViolation: 4009,
  /** Generic reconnect: the node is shutting down. */
  reconnect: 4200,
  /** No pong within the heartbeat deadline. */
  pongTimeout: 4201,
  /** The client read too slowly (its output passed the bound): back off, then reconnect. */
  slowConsumer: 4100,
  /** The user's connections were terminated through the HTTP API. */
  terminated: 4009,
} as const;

/** Error codes of `pusher:error` frames that do not close the connection. */
export const PusherErrorCode = {
  /** A generic error (bad frame, bad subscription). */
  generic: 4000,
  /** Client events over the rate limit. */
  clientEventRateLimit: 4301,
} as const;

/** Pusher's channel names: 1–164 of A–Z a–z 0–9 _ - = @ , . ; */
const CHANNEL = /^[A-Za-z0-9_\-=@,.;]{1,164}$/;
export const isChannelName = (s: unknown): s is string => typeof s === 'string' && CHANNEL.test(s);
export const CHANNEL_NAME_RULE = '1–164 characters of A–Z a–z 0–9 _ - = @ , . ;';

export type ChannelKind = 'public' | 'private' | 'presence' | 'encrypted';

/** A channel's kind from its prefix (`private-encrypted-` before `private-`). */
export function channelKind(channel: string): ChannelKind {
  if (channel.startsWith('private-encrypted-')) return 'encrypted';
  if (channel.startsWith('presence-')) return 'presence';
  if (channel.startsWith('private-')) return 'private';
  return 'public';
}

/** Cache channels (`cache-`, `private-cache-`, `private-encrypted-cache-`, `presence-cache-`): the last event on subscribe. */
export const isCacheChannel = (channel: string): boolean => /^(?:private-encrypted-|private-|presence-)?cache-/.test(channel);

/** The channel a signed-in user's events arrive on (`#server-to-user-<user id>`); not a room. */
export const USER_CHANNEL_PREFIX = '#server-to-user-';

/** Whether subscribing needs a signed `auth` (private, encrypted and presence channels). */
export const needsAuth = (kind: ChannelKind): boolean => kind === 'private' || kind === 'encrypted' || kind === 'presence';

/** A frame received from a Pusher client, after the JSON parse (shape checked by the session). */
export interface PusherClientFrame {
  readonly event: string;
  readonly channel?: string;
  readonly data?: Json;
}

/** `pusher:connection_established`. */
export function connectionEstablished(socketId: string, activityTimeoutS: number): Buffer {
  return pusherFrame('pusher:connection_established', JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeoutS }));
}

/** `pusher:error` (`code` null for errors Pusher sends without one). */
export function pusherError(code: number | null, message: string): Buffer {
  return textFrame(JSON.stringify({ event: 'pusher:error', data: { code, message } }));
}

/** `pusher:subscription_error`: the subscription was refused (pusher-js emits it on the channel). */
export function subscriptionError(channel: string, type: string, error: string, status: number): Buffer {
  return textFrame(JSON.stringify({ event: 'pusher:subscription_error', channel, data: { type, error, status } }));
}

/** The presence part of `pusher_internal:subscription_succeeded`. */
export interface PresenceHash {
  ids: string[];
  hash: Record<string, Json>;
  count: number;
}

/** How a resumed subscription started (the resume extension; absent for others). */
export interface ResumeOutcome {
  recovery: 'recovered' | 'reset';
  missed: number;
  seq: number;
  epoch: string;
}

export function subscriptionSucceeded(channel: string, presence?: PresenceHash, resume?: ResumeOutcome): Buffer {
  const data = presence === undefined && resume === undefined ? '{}' : JSON.stringify({ ...(presence !== undefined ? { presence } : {}), ...resume });
  return pusherFrame('pusher_internal:subscription_succeeded', data, channel);
}

export function memberAdded(channel: string, userId: string, userInfo: Json | undefined): Buffer {
  return pusherFrame(
    'pusher_internal:member_added',
    JSON.stringify(userInfo === undefined ? { user_id: userId } : { user_id: userId, user_info: userInfo }),
    channel,
  );
}

export function memberRemoved(channel: string, userId: string): Buffer {
  return pusherFrame('pusher_internal:member_removed', JSON.stringify({ user_id: userId }), channel);
}

export const PUSHER_PING = pusherFrame('pusher:ping', '{}');
export const PUSHER_PONG = pusherFrame('pusher:pong', '{}');

/**
 * An event on a channel as every Pusher client receives it. `data` is sent as a string: a string payload as
 * it is (the HTTP API's `data` is one), anything else as its JSON text; `user_id` names the sender of a client
 * event on a presence channel.
 */
export function channelEvent(channel: string, event: string, data: Json, userId?: string, position?: { seq: number; epoch: string }): Buffer {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  const frame: { event: string; channel: string; data: string; user_id?: string; seq?: number; epoch?: string } = { event, channel, data: text };
  if (userId !== undefined) frame.user_id = userId;
  if (position !== undefined) {
    frame.seq = position.seq;
    frame.epoch = position.epoch;
  }
  return textFrame(JSON.stringify(frame));
}

/**
 * The resume extension (docs/pusher.md §Resume): a client that connects with `sb_resume=1` in the query gets
 * `seq` and `epoch` on every channel event, and may subscribe with `since: {seq, epoch}` to get what it missed.
 * Stock clients neither ask for it nor see it.
 */
export const RESUME_QUERY = 'sb_resume';

/** `pusher:cache_miss`: a cache channel has no last event yet. */
export const cacheMiss = (channel: string): Buffer => pusherFrame('pusher:cache_miss', '{}', channel);

/** `pusher:signin_success` with the signed user data. */
export const signinSuccess = (userData: string): Buffer => pusherFrame('pusher:signin_success', JSON.stringify({ user_data: userData }));

function pusherFrame(event: string, data: string, channel?: string): Buffer {
  return textFrame(JSON.stringify(channel === undefined ? { event, data } : { event, channel, data }));
}

/** The event name a room message is delivered under when it was published without one (a v1 publish). */
export const DEFAULT_EVENT = 'message';
