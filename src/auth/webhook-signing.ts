/**
 * Webhook request signatures (docs/hooks.md §Signatures), HMAC-SHA256 over the exact body bytes:
 * - native: `X-Switchboard-Signature: t=<ms>,v1=<hex HMAC(secret, "<ms>.<body>")>` — the time is signed with the body
 *   so a captured request cannot be replayed later than the receiver's tolerance;
 * - Pusher: `X-Pusher-Key: <app key>` and `X-Pusher-Signature: <hex HMAC(app secret, body)>` (what the `pusher`
 *   SDK's `webhook(req).isValid()` checks).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const NATIVE_SIGNATURE_HEADER = 'x-switchboard-signature';

const hmac = (secret: string, text: string): string => createHmac('sha256', secret).update(text, 'utf8').digest('hex');

export function nativeSignature(secret: string, body: string, timeMs: number): string {
  return `t=${timeMs},v1=${hmac(secret, `${timeMs}.${body}`)}`;
}

export function pusherWebhookSignature(secret: string, body: string): string {
  return hmac(secret, body);
}

/**
 * Whether a native signature header signs this body with this secret, made within `toleranceMs` of `nowMs`
 * (default 5 minutes). For receivers written in TypeScript, and the tests.
 */
export function verifyNativeSignature(secret: string, header: string, body: string, nowMs = Date.now(), toleranceMs = 300_000): boolean {
  const parts = new Map(header.split(',').map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] as const));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isSafeInteger(t) || v1 === undefined || Math.abs(nowMs - t) > toleranceMs) return false;
  const expected = Buffer.from(hmac(secret, `${t}.${body}`), 'utf8');
  const given = Buffer.from(v1, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
}
