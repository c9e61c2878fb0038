/**
 * Pusher's HTTP API, signed with the app's secret (auth/pusher-signing.ts), for backends using the `pusher`
 * server SDKs:
 *   POST /apps/:id/events                               an event to up to 100 channels (`socket_id` excluded, `info`)
 *   POST /apps/:id/batch_events                         up to 10 events
 *   GET  /apps/:id/channels                             occupied channels (`filter_by_prefix`, `info=user_count,subscription_count`)
 *   GET  /apps/:id/channels/:channel                    one channel (`info=user_count,subscription_count`)
 *   GET  /apps/:id/channels/:channel/users              a presence channel's users
 *   POST /apps/:id/users/:user_id/terminate_connections  closes the user's connections on every node
 * An event to `#server-to-user-<id>` (the SDK's sendToUser) goes to that signed-in user's connections.
 * Events are published through the one edge (sequenced, durable, in history); counts and member lists come
 * from presence, so they are the cluster's, the same on every node. Refusals are Pusher's: 401 for a bad
 * signature, key or timestamp, 413 for an event over the app's size, 400 for the rest, `{"error": …}`,
 * counted by code like every refusal.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { apiRequestRefusal } from '../auth/pusher-signing.js';
import type { PusherApp } from '../config/schema.js';
import type { Engines } from '../engines/engines.js';
import type { Json } from '../engines/types.js';
import { HttpError, readBody, RequestAbortedError, sendJson } from '../http/respond.js';
import type { Edge } from '../messaging/edge.js';
import type { Logger } from '../observability/logger.js';
import { CHANNEL_NAME_RULE, channelKind, isChannelName, USER_CHANNEL_PREFIX } from '../protocol/pusher.js';
import { isEventName, EVENT_NAME_RULE } from '../protocol/names.js';
import type { PusherConfig } from './deps.js';

/** Channels one trigger may name (Pusher's 100), and events one batch may hold (Pusher's 10). */
export const MAX_TRIGGER_CHANNELS = 100;
export const MAX_BATCH_EVENTS = 10;

export interface PusherApiDeps {
  readonly config: Pick<PusherConfig, 'pusherApps' | 'maxHttpBodyBytes'>;
  readonly edge: Edge;
  readonly engines: Pick<Engines, 'presence'>;
  readonly log: Logger;
}

type Info = { user_count?: number; subscription_count?: number };

export class PusherApi {
  private readonly apps = new Map<string, PusherApp>();

  constructor(private readonly deps: PusherApiDeps) {
    for (const app of deps.config.pusherApps) this.apps.set(app.id, app);
  }

  /** Serves `/apps/…`: resolves to the route label, or null for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<string | null> {
    const m = /^\/apps\/([^/]+)(\/.*)$/.exec(path);
    if (m === null) return null;
    try {
      await this.route(req, res, path, decodeURIComponent(m[1]!), m[2]!, query);
    } catch (err) {
      if (err instanceof RequestAbortedError) throw err;
      let status: number;
      let message: string;
      if (err instanceof HttpError) {
        this.deps.edge.counted(err.code);
        status = err.status;
        message = err.message;
      } else {
        const e = this.deps.edge.refused(err, { url: req.url });
        status = e.httpStatus;
        message = e.message;
      }
      if (!res.headersSent) sendJson(res, status, { error: message });
      else res.destroy();
    }
    return 'pusher';
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, appId: string, rest: string, query: URLSearchParams): Promise<void> {
    const app = this.apps.get(appId);
    if (app === undefined) throw new HttpError(404, 'bad_request', `unknown app ${appId.slice(0, 64)}`);
    const body = req.method === 'POST' ? await readBody(req, this.deps.config.maxHttpBodyBytes) : null;
    const refusal = apiRequestRefusal(app, req.method ?? 'GET', path, query, body);
    if (refusal !== null) throw new HttpError(401, 'unauthorized', refusal);
    if (req.method === 'POST' && rest === '/events') return sendJson(res, 200, await this.trigger(app, parseBody(body)));
    if (req.method === 'POST' && rest === '/batch_events') return sendJson(res, 200, await this.batch(app, parseBody(body)));
    if (req.method === 'GET' && rest === '/channels') return sendJson(res, 200, await this.channels(app, query));
    const term = /^\/users\/([^/]+)\/terminate_connections$/.exec(rest);
    if (req.method === 'POST' && term !== null) {
      await this.deps.edge.terminateUser(app.id, decodeURIComponent(term[1]!));
      return sendJson(res, 200, {});
    }
    const ch = /^\/channels\/([^/]+)(\/users)?$/.exec(rest);
    if (req.method === 'GET' && ch !== null) {
      const channel = decodeURIComponent(ch[1]!);
      if (!isChannelName(channel)) throw new HttpError(400, 'bad_room', `channel: ${CHANNEL_NAME_RULE}`);
      return sendJson(res, 200, ch[2] !== undefined ? await this.users(app, channel) : await this.channel(app, channel, query));
    }
    throw new HttpError(404, 'bad_request', `no Pusher API route ${req.method ?? ''} ${rest}`);
  }

  private async trigger(app: PusherApp, body: { [k: string]: Json }): Promise<Json> {
    const channels = body.channels ?? (body.channel !== undefined ? [body.channel] : undefined);
    if (!Array.isArray(channels) || channels.length === 0) throw new HttpError(400, 'bad_request', 'give channels (an array) or channel');
    if (channels.length > MAX_TRIGGER_CHANNELS) throw new HttpError(400, 'bad_request', `at most ${MAX_TRIGGER_CHANNELS} channels per event`);
    const names = channels.map((c) => {
      if (typeof c === 'string' && (c.startsWith(USER_CHANNEL_PREFIX) || isChannelName(c))) return c;
      throw new HttpError(400, 'bad_room', `channel: ${CHANNEL_NAME_RULE}`);
    });
    const event = this.checkEvent(app, body);
    await Promise.all(names.map((channel) => this.publish(app, channel, event)));
    const info = infoFields(body.info);
    if (info.length === 0) return {};
    const out: Record<string, Json> = {};
    for (const channel of names) out[channel] = await this.counts(app, channel, info);
    return { channels: out };
  }

  private async batch(app: PusherApp, body: { [k: string]: Json }): Promise<Json> {
    const batch = body.batch;
    if (!Array.isArray(batch) || batch.length === 0) throw new HttpError(400, 'bad_request', 'batch must be a non-empty array');
    if (batch.length > MAX_BATCH_EVENTS) throw new HttpError(400, 'bad_request', `at most ${MAX_BATCH_EVENTS} events per batch`);
    const items = batch.map((item) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new HttpError(400, 'bad_request', 'each batch item is an object');
      if (!isChannelName(item.channel)) throw new HttpError(400, 'bad_room', `channel: ${CHANNEL_NAME_RULE}`);
      return { channel: item.channel, event: this.checkEvent(app, item), info: infoFields(item.info) };
    });
    // In order: events of one batch to one channel keep the batch's order.
    for (const item of items) await this.publish(app, item.channel, item.event);
    if (items.every((i) => i.info.length === 0)) return {};
    const out: Json[] = [];
    for (const item of items) out.push(item.info.length > 0 ? await this.counts(app, item.channel, item.info) : {});
    return { batch: out };
  }

  private checkEvent(app: PusherApp, body: { [k: string]: Json }): { name: string; data: Json; socketId?: string } {
    const { name, data, socket_id: socketId } = body;
    if (!isEventName(name)) throw new HttpError(400, 'bad_request', `name: ${EVENT_NAME_RULE}`);
    if (data === undefined) throw new HttpError(400, 'bad_request', 'data is required');
    const size = Buffer.byteLength(typeof data === 'string' ? data : JSON.stringify(data));
    if (size > app.maxEventBytes) throw new HttpError(413, 'frame_too_large', `event data of ${size} bytes is over the app's limit of ${app.maxEventBytes}`);
    if (socketId !== undefined && (typeof socketId !== 'string' || !/^\d+\.\d+$/.test(socketId))) {
      throw new HttpError(400, 'bad_request', 'socket_id must look like 123.456');
    }
    return socketId !== undefined ? { name, data, socketId } : { name, data };
  }

  private async publish(app: PusherApp, channel: string, e: { name: string; data: Json; socketId?: string }): Promise<void> {
    if (channel.startsWith(USER_CHANNEL_PREFIX)) {
      // A user event: direct, to every connection of the signed-in user (not sequenced, not stored).
      await this.deps.edge.publish('pusher', { tenant: app.id, user: channel.slice(USER_CHANNEL_PREFIX.length), from: 'server', data: e.data, event: e.name });
      return;
    }
    await this.deps.edge.publish('pusher', {
      tenant: app.id,
      room: channel,
      from: 'server',
      data: e.data,
      event: e.name,
      ...(e.socketId !== undefined ? { except: e.socketId } : {}),
    });
  }

  private async channels(app: PusherApp, query: URLSearchParams): Promise<Json> {
    const prefix = query.get('filter_by_prefix') ?? '';
    const info = infoFields(query.get('info') ?? undefined);
    if (info.includes('user_count') && !prefix.startsWith('presence-')) {
      throw new HttpError(400, 'bad_request', 'info=user_count needs filter_by_prefix=presence-');
    }
    const rooms = (await this.deps.engines.presence.rooms(app.id)).filter((r) => r.startsWith(prefix) && isChannelName(r));
    const out: Record<string, Json> = {};
    for (const room of rooms) {
      const counts = await this.counts(app, room, info.length > 0 ? info : ['subscription_count']);
      if (counts.subscription_count === 0 || counts.user_count === 0) continue; // read empty: not occupied
      out[room] = info.length > 0 ? (pick(counts, info) as Json) : {};
    }
    return { channels: out };
  }

  private async channel(app: PusherApp, channel: string, query: URLSearchParams): Promise<Json> {
    const info = infoFields(query.get('info') ?? undefined);
    if (info.includes('user_count') && channelKind(channel) !== 'presence') throw new HttpError(400, 'bad_request', 'user_count is for presence channels');
    const counts = await this.counts(app, channel, ['subscription_count', ...(channelKind(channel) === 'presence' ? (['user_count'] as const) : [])]);
    return { occupied: (counts.subscription_count ?? 0) > 0, ...(pick(counts, info) as { [k: string]: Json }) };
  }

  private async users(app: PusherApp, channel: string): Promise<Json> {
    if (channelKind(channel) !== 'presence') throw new HttpError(400, 'bad_request', 'users are listed for presence channels only');
    const members = await this.deps.edge.presence({ tenant: app.id, room: channel });
    return { users: members.filter((m) => m.online).map((m) => ({ id: m.user })) };
  }

  /** A channel's counts from presence: users online, and their connections (subscriptions). */
  private async counts(app: PusherApp, channel: string, info: readonly string[]): Promise<Info> {
    const members = (await this.deps.edge.presence({ tenant: app.id, room: channel })).filter((m) => m.online);
    const out: Info = {};
    if (info.includes('subscription_count')) out.subscription_count = members.reduce((n, m) => n + m.connections, 0);
    if (info.includes('user_count') && channelKind(channel) === 'presence') out.user_count = members.length;
    return out;
  }
}

/** `info` as a list of the attributes Switchboard answers (`user_count`, `subscription_count`). */
function infoFields(v: Json | undefined): ('user_count' | 'subscription_count')[] {
  if (typeof v !== 'string' || v === '') return [];
  return v.split(',').filter((f): f is 'user_count' | 'subscription_count' => f === 'user_count' || f === 'subscription_count');
}

function pick(counts: Info, info: readonly string[]): Info {
  const out: Info = {};
  if (info.includes('user_count') && counts.user_count !== undefined) out.user_count = counts.user_count;
  if (info.includes('subscription_count') && counts.subscription_count !== undefined) out.subscription_count = counts.subscription_count;
  return out;
}

function parseBody(body: Buffer | null): { [k: string]: Json } {
  let value: unknown;
  try {
    value = JSON.parse((body ?? Buffer.alloc(0)).toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad_json', 'body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad_request', 'body must be a JSON object');
  return value as { [k: string]: Json };
}
