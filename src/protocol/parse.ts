/**
 * A cheap structural check of server frames (protocol/wire.ts), for clients: the JSON text of one frame in,
 * a typed `ServerFrame` out, or null when it is not JSON, its `type` is unknown, or a field has the wrong
 * kind. Fields are checked by `typeof` (and messages in a history page one by one); nothing is copied. Unknown
 * extra fields are allowed, so a newer server can add some. Dependency-free, so it fits in the browser bundle.
 */
import type { ServerFrame, ServerFrameOf, ServerFrameType, WireMessage } from './wire.js';

/** s string, n number, b boolean, i request id, j any JSON value, a array, o object, m[] array of messages. */
type Kind = 's' | 'n' | 'b' | 'i' | 'j' | 'a' | 'o' | 'm[]';
/** A field's kind (`?`: may be absent), or the list of its allowed strings. */
type FieldSpec<V> = undefined extends V ? `${Kind}?` : Kind | readonly string[];
/** Every field of frame F but `type` must be described: adding a field to a frame without a check here fails to compile. */
type Shape<F> = { readonly [K in Exclude<keyof F, 'type'>]-?: FieldSpec<F[K]> };

const MESSAGE: Shape<WireMessage> = { room: 's', seq: 'n', epoch: 's', from: 's', ts: 'n', event: 's?', key: 's?', data: 'j' };

const SHAPES: { readonly [T in ServerFrameType]: Shape<ServerFrameOf<T>> } = {
  connected: {
    id: 'i?',
    connId: 's',
    node: 's',
    user: 's',
    tenant: 's',
    protocol: 'n',
    pingIntervalMs: 'n',
    pingTimeoutMs: 'n',
    maxFrameBytes: 'n',
    expiresAt: 'n?',
  },
  refreshed: { id: 'i', expiresAt: 'n?' },
  joined: { id: 'i', room: 's', seq: 'n', epoch: 's', recovery: ['none', 'recovered', 'reset'], missed: 'n' },
  left: { id: 'i', room: 's' },
  ack: { id: 'i', room: 's', seq: 'n', epoch: 's', duplicate: 'b' },
  message: MESSAGE,
  catchup: { room: 's', from: 'n', to: 'n', keys: 'n', complete: 'b' },
  skipped: { room: 's', from: 'n', to: 'n' },
  'history.page': { id: 'i', room: 's', messages: 'm[]', more: 'b' },
  'presence.list': { id: 'i', room: 's', members: 'a' },
  'presence.diff': { room: 's', joined: 'a', left: 'a', truncated: 'o?' },
  direct: { from: 's', ts: 'n', data: 'j' },
  sent: { id: 'i', topic: 's', idem: 's', durable: 'b', duplicate: 'b' },
  'rpc.result': { id: 'i', topic: 's', data: 'j' },
  ping: {},
  pong: { id: 'i?' },
  notice: { code: ['reconnect'], reason: 's', reconnectAfterMs: 'n' },
  error: { id: 'i?', code: 's', message: 's', retryable: 'b', room: 's?' },
};

type Loose = Record<string, unknown>;

function fits(v: unknown, kind: Kind): boolean {
  switch (kind) {
    case 's':
      return typeof v === 'string';
    case 'n':
      return typeof v === 'number';
    case 'b':
      return typeof v === 'boolean';
    case 'i':
      return typeof v === 'number' || typeof v === 'string';
    case 'j':
      return v !== undefined;
    case 'a':
      return Array.isArray(v);
    case 'o':
      return typeof v === 'object' && v !== null;
    case 'm[]':
      return Array.isArray(v) && v.every((m) => isObject(m) && matches(m, MESSAGE));
  }
}

function isObject(v: unknown): v is Loose {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function matches(f: Loose, shape: Readonly<Record<string, Kind | `${Kind}?` | readonly string[]>>): boolean {
  for (const key in shape) {
    const spec = shape[key]!;
    const v = f[key];
    if (typeof spec !== 'string') {
      if (typeof v !== 'string' || !spec.includes(v)) return false;
    } else if (spec.endsWith('?')) {
      if (v !== undefined && !fits(v, spec.slice(0, -1) as Kind)) return false;
    } else if (!fits(v, spec as Kind)) return false;
  }
  return true;
}

/** The server frame in `text`, or null when it is not a well-formed protocol v1 server frame. */
export function parseServerFrame(text: string): ServerFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(v) || typeof v.type !== 'string' || !Object.prototype.hasOwnProperty.call(SHAPES, v.type)) return null;
  const shape: Readonly<Record<string, Kind | `${Kind}?` | readonly string[]>> = SHAPES[v.type as ServerFrameType];
  // The one cast: every field the frame type declares was checked above.
  return matches(v, shape) ? (v as unknown as ServerFrame) : null;
}

/** Narrows a frame to type T (a type guard for `frame.type === type`). */
export function isFrame<T extends ServerFrameType>(frame: ServerFrame, type: T): frame is ServerFrameOf<T> {
  return frame.type === type;
}
