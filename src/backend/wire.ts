/**
 * The NATS contract between gateways and backend services (shared by src/services/services.ts and the
 * backend SDK; docs/backend.md describes it for services written without the SDK).
 *
 *   svc.<service>.<name>     core NATS, queue group `svc.<service>`: fire-and-forget sends and RPC.
 *                            The gateway sends a request; an instance answers a send at once with
 *                            `{ ok: true }` (received, before the handler runs) and an RPC with the
 *                            handler's result or `{ ok: false, error }`. No responders = no instance.
 *   sbq.<service>.<name>     durable sends: captured by the work-queue stream `SB_SVC_<service>`, read by
 *                            the shared durable pull consumer `svc` (one instance gets each message).
 *   sbdlq.<service>.<name>   dead letters (stream `SB_SVC_DLQ`): a durable send whose handler failed
 *                            `maxDeliver` times, with the error.
 *   sb.api.publish / sb.api.presence   served by every gateway in queue group `sb.api`: the SDK's
 *                            publishToRoom / publishToUser / presence, answered like the HTTP API.
 */
import type { Json } from '../protocol/wire.js';

const SERVICE = /^[a-z0-9_-]{1,64}$/;
const NAME = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}$/;

export const SERVICE_NAME_RULE = 'service: 1–64 characters of a–z 0–9 _ -';
export const TOPIC_RULE = 'topic: <service>.<name>, service 1–64 of a–z 0–9 _ -, name 1–4 dot-separated parts of A–Z a–z 0–9 _ -';

export const isServiceName = (s: unknown): s is string => typeof s === 'string' && SERVICE.test(s);
export const isHandlerName = (s: unknown): s is string => typeof s === 'string' && NAME.test(s);

/** Splits `orders.create` into service `orders` and handler name `create`; null when invalid. */
export function parseTopic(topic: string): { service: string; name: string } | null {
  const dot = topic.indexOf('.');
  if (dot < 0) return null;
  const service = topic.slice(0, dot);
  const name = topic.slice(dot + 1);
  return isServiceName(service) && isHandlerName(name) ? { service, name } : null;
}

export const coreSubject = (service: string, name: string): string => `svc.${service}.${name}`;
export const durableSubject = (service: string, name: string): string => `sbq.${service}.${name}`;
export const deadLetterSubject = (service: string, name: string): string => `sbdlq.${service}.${name}`;
export const queueGroup = (service: string): string => `svc.${service}`;
export const streamName = (service: string): string => `SB_SVC_${service}`;
export const DEAD_LETTER_STREAM = 'SB_SVC_DLQ';
export const DURABLE_CONSUMER = 'svc';

export const API_PUBLISH = 'sb.api.publish';
export const API_PRESENCE = 'sb.api.presence';
export const API_QUEUE = 'sb.api';

/** What a service instance receives for a client `send` or `rpc` (JSON). */
export interface ServiceRequest {
  readonly kind: 'send' | 'rpc';
  /** `<service>.<name>` as the client sent it. */
  readonly topic: string;
  readonly tenant: string;
  readonly user: string;
  /** The sender's connection id and gateway node. */
  readonly conn: string;
  readonly node: string;
  /** The client's idempotency id (or one the gateway made): dedupe on (tenant, user, idem). */
  readonly idem: string;
  /** When the gateway accepted it (ms since the epoch). */
  readonly ts: number;
  readonly data: Json;
}

/** A service instance's answer on core NATS (a send's receipt, or an RPC's result or error message). */
export type ServiceReply = { ok: true; data?: Json } | { ok: false; error: string };

/** A dead letter: the request and the last handler error. */
export interface DeadLetter {
  readonly request: ServiceRequest;
  readonly error: string;
  readonly deliveries: number;
}

export function encodeJson(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function decodeJson<T>(payload: Uint8Array): T {
  return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8')) as T;
}
