/**
 * The bodies and headers of webhook requests (docs/hooks.md §Payloads): Switchboard's own JSON, or Pusher's
 * (`{time_ms, events:[{name:"channel_occupied", channel}, …]}`) for Pusher apps. Both carry every event's id and time.
 */
import { NATIVE_SIGNATURE_HEADER, nativeSignature, pusherWebhookSignature } from '../auth/webhook-signing.js';
import type { Json } from '../engines/types.js';
import type { WebhookEvent } from '../engines/webhookqueue/queue.js';
import type { WebhookTargetSpec } from './targets.js';

export interface WebhookRequest {
  readonly body: string;
  readonly headers: Record<string, string>;
}

const PUSHER_NAMES = {
  room_occupied: 'channel_occupied',
  room_vacated: 'channel_vacated',
  member_added: 'member_added',
  member_removed: 'member_removed',
  client_event: 'client_event',
} as const;

function nativeEvent(e: WebhookEvent): Record<string, Json> {
  const out: Record<string, Json> = { id: e.id, ts: e.ts, name: e.name, tenant: e.tenant, room: e.room };
  if (e.user !== undefined) out.user = e.user;
  if (e.event !== undefined) out.event = e.event;
  if (e.data !== undefined) out.data = e.data;
  if (e.socketId !== undefined) out.connection = e.socketId;
  return out;
}

function pusherEvent(e: WebhookEvent): Record<string, Json> {
  const out: Record<string, Json> = { name: PUSHER_NAMES[e.name], channel: e.room };
  if (e.name === 'client_event') {
    out.event = e.event ?? '';
    // Pusher sends a client event's data as the string the client sent.
    out.data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data ?? null);
    if (e.socketId !== undefined) out.socket_id = e.socketId;
    if (e.user !== undefined) out.user_id = e.user;
  } else if (e.user !== undefined) {
    out.user_id = e.user;
  }
  out.id = e.id;
  out.time_ms = e.ts;
  return out;
}

/** The request for a batch of events to one target, signed at `nowMs`. */
export function webhookRequest(target: WebhookTargetSpec, events: readonly WebhookEvent[], nowMs: number): WebhookRequest {
  if (target.format === 'pusher') {
    const body = JSON.stringify({ time_ms: nowMs, events: events.map(pusherEvent) });
    return {
      body,
      headers: { 'content-type': 'application/json', 'x-pusher-key': target.key ?? '', 'x-pusher-signature': pusherWebhookSignature(target.secret, body) },
    };
  }
  const body = JSON.stringify({ time_ms: nowMs, tenant: target.tenant, events: events.map(nativeEvent) });
  return { body, headers: { 'content-type': 'application/json', [NATIVE_SIGNATURE_HEADER]: nativeSignature(target.secret, body, nowMs) } };
}
