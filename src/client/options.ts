/**
 * Validation of `connect(url, options)`: every mistake is a synchronous `invalid_argument` error, before any
 * socket is opened. Returns the options with defaults filled in.
 */
import type { BackoffOptions } from './backoff.js';
import { defaultBackoff } from './backoff.js';
import { invalidArgument } from './errors.js';
import type { ClientOptions, WebSocketConstructor } from './types.js';

/** The server refuses more than 256 requests in flight per connection; keep a margin for joins and pings. */
export const MAX_IN_FLIGHT_LIMIT = 250;

export interface ResolvedOptions {
  url: string;
  token: string | undefined;
  getToken: (() => string | Promise<string>) | undefined;
  user: string | undefined;
  WebSocket: WebSocketConstructor;
  backoff: BackoffOptions;
  /** null: watchdog off. */
  watchdogGraceMs: number | null;
  offlineQueueMax: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxInFlight: number;
  gapWaitMs: number;
  reorderBufferMax: number;
}

const USER = /^[A-Za-z0-9_\-.:@~]{1,128}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(value: unknown, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER, integer = true): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw invalidArgument(`${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

/** `ws://` or `wss://` (an `http(s)://` URL is turned into its WebSocket form). */
export function normalizeUrl(url: unknown): string {
  if (typeof url !== 'string' || url === '') throw invalidArgument('url must be a non-empty string such as ws://localhost:8080/ws');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument(`url is not a valid URL: ${url}`);
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw invalidArgument(`url must use ws:// or wss:// (or http(s)://), got ${parsed.protocol}`);
  }
  if (parsed.hash !== '') throw invalidArgument('url must not have a #fragment');
  return parsed.toString();
}

export function resolveOptions(url: unknown, raw: ClientOptions | undefined): ResolvedOptions {
  const normalized = normalizeUrl(url);
  if (raw !== undefined && !isObject(raw)) throw invalidArgument('options must be an object');
  const o: ClientOptions = raw ?? {};
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token === '')) throw invalidArgument('token must be a non-empty string');
  if (o.getToken !== undefined && typeof o.getToken !== 'function') throw invalidArgument('getToken must be a function');
  if (o.token !== undefined && o.getToken !== undefined) throw invalidArgument('give token or getToken, not both');
  if (o.user !== undefined && (typeof o.user !== 'string' || !USER.test(o.user))) {
    throw invalidArgument('user must be 1–128 characters of A–Z a–z 0–9 _ - . : @ ~');
  }
  const WS = o.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof WS !== 'function') {
    throw invalidArgument('no WebSocket implementation: pass options.WebSocket (in Node 20: `import WebSocket from "ws"`)');
  }
  if (o.backoff !== undefined && !isObject(o.backoff)) throw invalidArgument('backoff must be an object');
  const minMs = num(o.backoff?.minMs, 'backoff.minMs', defaultBackoff.minMs, 0);
  const maxMs = num(o.backoff?.maxMs, 'backoff.maxMs', Math.max(defaultBackoff.maxMs, minMs), 0);
  const factor = num(o.backoff?.factor, 'backoff.factor', defaultBackoff.factor, 1, 100, false);
  if (maxMs < minMs) throw invalidArgument(`backoff.maxMs (${maxMs}) must be ≥ backoff.minMs (${minMs})`);
  let watchdogGraceMs: number | null = 10_000;
  if (o.watchdog === false) watchdogGraceMs = null;
  else if (o.watchdog !== undefined) {
    if (!isObject(o.watchdog)) throw invalidArgument('watchdog must be an object or false');
    watchdogGraceMs = num(o.watchdog.graceMs, 'watchdog.graceMs', 10_000, 0);
  }
  if (o.offlineQueue !== undefined && !isObject(o.offlineQueue)) throw invalidArgument('offlineQueue must be an object');
  return {
    url: normalized,
    token: o.token,
    getToken: o.getToken,
    user: o.user,
    WebSocket: WS as WebSocketConstructor,
    backoff: { minMs, maxMs, factor },
    watchdogGraceMs,
    offlineQueueMax: num(o.offlineQueue?.max, 'offlineQueue.max', 1000, 0),
    requestTimeoutMs: num(o.requestTimeoutMs, 'requestTimeoutMs', 15_000, 1),
    connectTimeoutMs: num(o.connectTimeoutMs, 'connectTimeoutMs', 10_000, 1),
    handshakeTimeoutMs: num(o.handshakeTimeoutMs, 'handshakeTimeoutMs', 30_000, 1),
    maxInFlight: num(o.maxInFlight, 'maxInFlight', 128, 1, MAX_IN_FLIGHT_LIMIT),
    gapWaitMs: num(o.gapWaitMs, 'gapWaitMs', 1000, 0),
    reorderBufferMax: num(o.reorderBufferMax, 'reorderBufferMax', 1000, 1),
  };
}
