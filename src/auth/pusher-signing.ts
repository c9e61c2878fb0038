/**
 * Pusher's HMAC-SHA256 signatures, checked with the app's secret (docs/pusher.md §Authorization):
 * - channel authorization: `key:hex(HMAC(secret, "socket_id:channel"))`, with `":channel_data"` appended for
 *   presence channels;
 * - user authentication (`pusher:signin`): `key:hex(HMAC(secret, "socket_id::user::user_data"))`;
 * - HTTP API requests: `auth_signature = hex(HMAC(secret, "METHOD\npath\nquery"))`, the query being every
 *   parameter but `auth_signature`, keys lower-cased and sorted, `key=value` joined by `&` (values as decoded),
 *   with `auth_timestamp` within 600 s of now and `body_md5` the MD5 of the body when there is one.
 * Comparisons are constant-time. A refusal says what was wrong, never what was expected.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** How far an HTTP API request's `auth_timestamp` may be from the server's clock, s (Pusher's 600). */
export const API_TIMESTAMP_WINDOW_S = 600;

export interface SigningApp {
  readonly key: string;
  readonly secret: string;
}

const hmac = (secret: string, text: string): string => createHmac('sha256', secret).update(text, 'utf8').digest('hex');

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The `auth` a backend returns for a private/presence channel (what the `pusher` SDK's authorizeChannel computes). */
export function channelAuth(app: SigningApp, socketId: string, channel: string, channelData?: string): string {
  const text = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return `${app.key}:${hmac(app.secret, text)}`;
}

/** Whether `auth` authorizes this socket on this channel (and, for presence, exactly this channel_data). */
export function verifyChannelAuth(app: SigningApp, socketId: string, channel: string, auth: string, channelData?: string): boolean {
  return sameText(auth, channelAuth(app, socketId, channel, channelData));
}

/** The `auth` of a `pusher:signin` (what the `pusher` SDK's authenticateUser computes). */
export function userAuth(app: SigningApp, socketId: string, userData: string): string {
  return `${app.key}:${hmac(app.secret, `${socketId}::user::${userData}`)}`;
}

export function verifyUserAuth(app: SigningApp, socketId: string, userData: string, auth: string): boolean {
  return sameText(auth, userAuth(app, socketId, userData));
}

/** Why an HTTP API request's signature is refused (Pusher answers 401), or null when it holds. */
export function apiRequestRefusal(
  app: SigningApp,
  method: string,
  path: string,
  query: URLSearchParams,
  body: Buffer | null,
  nowMs: number = Date.now(),
): string | null {
  const params = new Map<string, string>();
  for (const [k, v] of query) params.set(k.toLowerCase(), v);
  const signature = params.get('auth_signature');
  if (signature === undefined) return 'missing auth_signature';
  if (params.get('auth_key') !== app.key) return 'auth_key does not match the app';
  if (params.get('auth_version') !== '1.0') return 'auth_version must be 1.0';
  const ts = Number(params.get('auth_timestamp'));
  if (!Number.isInteger(ts)) return 'missing or invalid auth_timestamp';
  if (Math.abs(nowMs / 1000 - ts) > API_TIMESTAMP_WINDOW_S) return `auth_timestamp is more than ${API_TIMESTAMP_WINDOW_S} s from the server's time`;
  if (body !== null && body.length > 0) {
    const md5 = createHash('md5').update(body).digest('hex');
    if (params.get('body_md5') !== md5) return 'body_md5 does not match the body';
  }
  params.delete('auth_signature');
  const text = [...params.keys()]
    .sort()
    .map((k) => `${k}=${params.get(k)!}`)
    .join('&');
  return sameText(signature, hmac(app.secret, `${method.toUpperCase()}\n${path}\n${text}`)) ? null : 'invalid signature';
}
