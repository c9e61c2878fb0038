/**
 * The Pusher protocol state machine of one connection: `pusher:ping`/`pong`, `pusher:subscribe` (public,
 * private, presence, encrypted, cache channels) and `unsubscribe`, and `client-*` events. Subscriptions are
 * room memberships of the app's tenant, so delivery, ordering and presence are the rooms' (docs/pusher.md).
 * Every refusal is answered the way Pusher answers it (`pusher:error` or `pusher:subscription_error`), is
 * counted by its code, and fails that one frame; repeated invalid frames close the connection (4009).
 */
import { verifyChannelAuth, verifyUserAuth } from '../auth/pusher-signing.js';
import type { Json, RoomPosition, RoomRef } from '../engines/types.js';
import { recover } from '../messaging/recovery.js';
import { SwitchboardError } from '../protocol/errors.js';
import { exceedsDepth, MAX_JSON_DEPTH } from '../protocol/json-depth.js';
import { isUserId, USER_ID_RULE } from '../protocol/names.js';
import {
  cacheMiss,
  CHANNEL_NAME_RULE,
  channelKind,
  isCacheChannel,
  isChannelName,
  needsAuth,
  PUSHER_PONG,
  PusherClose,
  PusherErrorCode,
  signinSuccess,
  subscriptionError,
  USER_CHANNEL_PREFIX,
  subscriptionSucceeded,
  type PresenceHash,
  type ResumeOutcome,
} from '../protocol/pusher.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { Membership } from '../rooms/room.js';
import { roomSubject, encodeEnvelope } from '../messaging/subjects.js';
import type { PusherConnection, Subscription } from './connection.js';
import type { PusherDeps } from './deps.js';

const MAX_BAD_FRAMES = 100;
/** Subscribes one connection may have in progress at once. */
const MAX_INFLIGHT = 64;

export class PusherSession {
  constructor(private readonly ctx: PusherDeps) {}

  onMessage(c: PusherConnection, data: Buffer, isBinary: boolean): void {
    c.lastRecv = Date.now();
    c.pingSentAt = 0;
    this.ctx.metrics.messagesIn.inc();
    const frame = this.parse(c, data, isBinary);
    if (frame === null) {
      if (++c.badFrames >= MAX_BAD_FRAMES) c.close(PusherClose.protocolViolation, 'too many invalid frames');
      return;
    }
    const { event, channel, data: payload } = frame;
    if (event === 'pusher:ping') return c.send(PUSHER_PONG);
    if (event === 'pusher:pong') return;
    if (event === 'pusher:subscribe') return this.run(c, this.subscribe(c, payload));
    if (event === 'pusher:unsubscribe') return this.unsubscribe(c, payload);
    if (event === 'pusher:signin') return this.run(c, this.signin(c, payload));
    if (event.startsWith('client-')) return this.run(c, this.clientEvent(c, event, channel, payload));
    this.refuse(c, 'unknown_type', PusherErrorCode.generic, `unsupported event ${JSON.stringify(event).slice(0, 80)}`);
  }

  private run(c: PusherConnection, work: Promise<void>): void {
    c.inflight++;
    work
      .catch((err: unknown) => {
        const e = this.ctx.edge.asError(err, { conn: c.socketId });
        this.refuse(c, e.code, PusherErrorCode.generic, e.message);
      })
      .finally(() => {
        c.inflight--;
      });
  }

  private parse(c: PusherConnection, data: Buffer, isBinary: boolean): { event: string; channel?: string; data?: Json } | null {
    if (isBinary) return this.refused(c, 'bad_frame', 'binary frames are not part of the Pusher protocol');
    if (data.length > c.app.maxEventBytes + 4096) return this.refused(c, 'frame_too_large', `frame of ${data.length} bytes is over the limit`);
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString('utf8'));
    } catch {
      return this.refused(c, 'bad_json', 'frame is not valid JSON');
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return this.refused(c, 'bad_frame', 'a frame is a JSON object');
    if (exceedsDepth(raw, MAX_JSON_DEPTH)) return this.refused(c, 'bad_frame', `frame nests deeper than ${MAX_JSON_DEPTH} levels`);
    const o = raw as { event?: unknown; channel?: unknown; data?: Json };
    if (typeof o.event !== 'string' || o.event === '') return this.refused(c, 'bad_frame', 'a frame needs an event name');
    if (o.channel !== undefined && typeof o.channel !== 'string') return this.refused(c, 'bad_frame', 'channel must be a string');
    return { event: o.event, ...(o.channel !== undefined ? { channel: o.channel } : {}), ...(o.data !== undefined ? { data: o.data } : {}) };
  }

  private refused(c: PusherConnection, code: ErrorCode, message: string): null {
    this.refuse(c, code, PusherErrorCode.generic, message);
    return null;
  }

  /** Answers `pusher:error` with Pusher's code, counted under Switchboard's code. */
  private refuse(c: PusherConnection, code: ErrorCode, pusherCode: number | null, message: string): void {
    this.ctx.edge.counted(code);
    c.sendError(pusherCode, message);
  }

  private refuseSubscription(c: PusherConnection, channel: string, code: ErrorCode, status: number, message: string): void {
    this.ctx.edge.counted(code);
    c.send(subscriptionError(channel, status === 401 || status === 403 ? 'AuthError' : 'SubscriptionError', message, status));
  }

  /**
   * `pusher:signin`: user authentication signed by the app's backend. The connection then gets the events
   * sent to that user (on `#server-to-user-<id>`, from any node) and can be terminated by user id.
   */
  private async signin(c: PusherConnection, payload: Json | undefined): Promise<void> {
    const p = asObject(payload);
    const auth = p?.auth;
    const userData = p?.user_data;
    if (typeof auth !== 'string' || typeof userData !== 'string')
      return this.refuse(c, 'bad_request', PusherErrorCode.generic, 'signin needs auth and user_data');
    if (!verifyUserAuth(c.app, c.socketId, userData, auth))
      return this.refuse(c, 'unauthorized', PusherErrorCode.generic, 'Invalid signature for user authentication');
    let id: unknown;
    try {
      id = (JSON.parse(userData) as { id?: unknown }).id;
    } catch {
      return this.refuse(c, 'bad_json', PusherErrorCode.generic, 'user_data is not valid JSON');
    }
    if (typeof id !== 'string' || !isUserId(id)) return this.refuse(c, 'bad_request', PusherErrorCode.generic, `user_data.id: ${USER_ID_RULE}`);
    if (c.user !== null) return this.refuse(c, 'already_connected', PusherErrorCode.generic, 'this connection is already signed in');
    c.user = id;
    await this.ctx.users.add(c.app.id, id, c);
    if (c.dead) {
      this.ctx.users.remove(c.app.id, id, c);
      return;
    }
    c.send(signinSuccess(userData));
  }

  private async subscribe(c: PusherConnection, payload: Json | undefined): Promise<void> {
    const p = asObject(payload);
    const channel = p?.channel;
    if (typeof channel === 'string' && channel.startsWith(USER_CHANNEL_PREFIX)) {
      // The signed-in user's own channel (pusher-js subscribes it after signin): events come through users.ts.
      if (c.user === null || channel !== `${USER_CHANNEL_PREFIX}${c.user}`) {
        return this.refuseSubscription(c, channel, 'forbidden', 403, 'sign in as this user to subscribe to its channel');
      }
      c.send(subscriptionSucceeded(channel));
      return;
    }
    if (typeof channel !== 'string' || !isChannelName(channel)) {
      return this.refuse(c, 'bad_room', PusherErrorCode.generic, `subscribe: channel must be ${CHANNEL_NAME_RULE}`);
    }
    if (c.subs.has(channel)) return this.refuse(c, 'bad_request', PusherErrorCode.generic, `already subscribed to ${channel}`);
    if (c.inflight > MAX_INFLIGHT) return this.refuseSubscription(c, channel, 'rate_limited', 429, 'too many subscriptions in progress');
    if (c.subs.size >= this.ctx.config.maxRoomsPerConnection) {
      return this.refuseSubscription(c, channel, 'too_many_rooms', 400, `a connection may subscribe at most ${this.ctx.config.maxRoomsPerConnection} channels`);
    }
    const kind = channelKind(channel);
    let presence: Subscription['presence'];
    if (needsAuth(kind)) {
      const auth = p?.auth;
      const channelData = kind === 'presence' ? p?.channel_data : undefined;
      if (typeof auth !== 'string' || (kind === 'presence' && typeof channelData !== 'string')) {
        return this.refuseSubscription(c, channel, 'unauthorized', 401, kind === 'presence' ? 'auth and channel_data are required' : 'auth is required');
      }
      if (!verifyChannelAuth(c.app, c.socketId, channel, auth, channelData as string | undefined)) {
        return this.refuseSubscription(c, channel, 'unauthorized', 401, 'invalid signature: the auth does not sign this socket_id and channel');
      }
      if (kind === 'presence') {
        const member = parseChannelData(channelData as string);
        if (typeof member === 'string') return this.refuseSubscription(c, channel, 'bad_request', 400, member);
        presence = { user: member.user, info: member.info, connId: `${c.socketId}/${channel}` };
      }
    }
    let since: RoomPosition | undefined;
    if (c.resume && p?.since !== undefined) {
      const v = asObject(p.since);
      if (v === null || typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 0 || typeof v.epoch !== 'string') {
        return this.refuseSubscription(c, channel, 'bad_request', 400, 'since must be {seq, epoch} from an earlier event of this channel');
      }
      since = { seq: v.seq, epoch: v.epoch };
    }
    const ref: RoomRef = { tenant: c.app.id, room: channel };
    if (presence !== undefined) {
      const members = await this.ctx.edge.presence(ref);
      const online = members.filter((m) => m.online);
      if (online.length >= c.app.maxPresenceMembers && !online.some((m) => m.user === presence.user)) {
        return this.refuseSubscription(c, channel, 'rate_limited', 403, `presence channel is full (${c.app.maxPresenceMembers} members)`);
      }
    }
    const membership: Membership =
      presence !== undefined
        ? { conn: c, local: null, pending: [], skipUpTo: 0, presenceUser: presence.user }
        : { conn: c, local: null, pending: [], skipUpTo: 0 };
    const sub: Subscription = presence !== undefined ? { kind, ref, membership, presence } : { kind, ref, membership };
    c.subs.set(channel, sub);
    try {
      await this.completeSubscribe(c, sub, since);
    } catch (err) {
      if (c.subs.get(channel) === sub) this.leave(c, channel);
      throw err;
    }
  }

  private async completeSubscribe(c: PusherConnection, sub: Subscription, since: RoomPosition | undefined): Promise<void> {
    const { ref, membership: ms } = sub;
    ms.local = await this.ctx.rooms.acquire(ref);
    if (c.subs.get(ref.room) !== sub || c.dead) {
      if (c.subs.get(ref.room) === sub) c.subs.delete(ref.room);
      this.ctx.rooms.release(ms.local);
      ms.local = null;
      return;
    }
    ms.local.members.add(ms);
    this.ctx.metrics.roomMemberships.inc();
    const position = ms.local.position();
    let hash: PresenceHash | undefined;
    if (sub.presence !== undefined) {
      const pc = this.presenceConn(c, sub);
      const { changed } = await this.ctx.engines.presence.join(ref, pc);
      if (changed) this.announce(ref, 'join', sub.presence.user, sub.presence.info);
      hash = toHash(await this.ctx.edge.presence(ref), sub.presence);
      // This node's members now hold a member list: leaves nobody announces (expiries) are found for them.
      ms.local?.trackPresence(hash.ids);
    } else {
      await this.ctx.engines.presence.join(ref, this.presenceConn(c, sub));
    }
    let resumed = since !== undefined ? await this.recover(c, sub, since) : undefined;
    if (c.subs.get(ref.room) !== sub || c.dead) return;
    if (ms.overflow === true) {
      // The channel moved on by more than MAX_PENDING events while subscribing: start from where it is now.
      const now = ms.local!.position();
      ms.pending = [];
      ms.skipUpTo = now.seq;
      if (resumed !== undefined) resumed = { outcome: { recovery: 'reset', missed: 0, seq: now.seq, epoch: now.epoch }, frames: [] };
    }
    c.send(subscriptionSucceeded(ref.room, hash, resumed?.outcome));
    for (const frame of resumed?.frames ?? []) c.send(frame);
    ms.skipUpTo = Math.max(ms.skipUpTo, resumed?.outcome.seq ?? position.seq);
    if (isCacheChannel(ref.room) && resumed === undefined) await this.sendCached(c, sub);
    for (const [seq, frame] of ms.pending ?? []) {
      if (seq > ms.skipUpTo) {
        c.send(frame);
        ms.skipUpTo = seq;
      }
    }
    ms.pending = null;
  }

  /**
   * The resume extension: what the channel published after `since`, from the recent window or history, as v1's
   * join recovery does; `reset` when it cannot be had whole (another epoch, too far behind, too large).
   */
  private async recover(c: PusherConnection, sub: Subscription, since: RoomPosition): Promise<{ outcome: ResumeOutcome; frames: Buffer[] }> {
    let outcome;
    try {
      outcome = await recover(this.ctx.engines.roomLog, this.ctx.holes, sub.ref, since, this.ctx.config.recoveryMaxGap);
    } catch (err) {
      throw new SwitchboardError('unavailable', 'recovery failed: the recent window or history is unavailable; subscribe again', { cause: err });
    }
    const ms = sub.membership;
    if (outcome.kind === 'recovered' && ms.overflow !== true) {
      const frames = outcome.messages.map((m) => c.codec.message(m));
      const bytes = frames.reduce((n, b) => n + b.length, 0);
      if (bytes <= this.ctx.config.maxBufferedBytes / 2) {
        this.ctx.metrics.recoveries.inc({ result: outcome.source });
        const seq = Math.max(outcome.position.seq, since.seq);
        return { outcome: { recovery: 'recovered', missed: frames.length, seq, epoch: outcome.position.epoch }, frames };
      }
    }
    this.ctx.metrics.recoveries.inc({ result: `reset_${outcome.kind === 'reset' ? outcome.reason : 'size'}` });
    // From where the room is now: messages after it come live (pending ones above it are still sent).
    const now = ms.local?.position() ?? outcome.position;
    return { outcome: { recovery: 'reset', missed: 0, seq: now.seq, epoch: now.epoch }, frames: [] };
  }

  /** A cache channel: its last event at once, or `pusher:cache_miss`. */
  private async sendCached(c: PusherConnection, sub: Subscription): Promise<void> {
    const page = await this.ctx.edge.history(sub.ref, { limit: 1 });
    const last = page.messages[page.messages.length - 1];
    const ms = sub.membership;
    if (last === undefined) {
      c.send(cacheMiss(sub.ref.room));
      return;
    }
    // The replay of the last event, even if it came before the subscription's start; a pending copy is skipped.
    c.send(c.codec.message(last));
    ms.skipUpTo = Math.max(ms.skipUpTo, last.seq);
  }

  /** Presence knows each subscription as a connection of its own: a Pusher presence user is per channel. */
  presenceConn(c: PusherConnection, sub: Subscription): { tenant: string; user: string; connId: string; nodeId: string; info?: Json } {
    const base = { tenant: c.app.id, nodeId: this.ctx.nodeId };
    if (sub.presence === undefined) return { ...base, user: c.socketId, connId: `${c.socketId}/${sub.ref.room}` };
    return { ...base, user: sub.presence.user, connId: sub.presence.connId, ...(sub.presence.info !== undefined ? { info: sub.presence.info } : {}) };
  }

  private announce(ref: RoomRef, kind: 'join' | 'leave', user: string, info?: Json): void {
    const env = kind === 'join' && info !== undefined ? { k: 'p' as const, kind, user, at: Date.now(), info } : { k: 'p' as const, kind, user, at: Date.now() };
    this.ctx.engines.backplane
      .publish(roomSubject(ref), encodeEnvelope(env))
      .catch((err: unknown) => this.ctx.log.warn({ err, room: ref.room }, 'presence update failed'));
  }

  private unsubscribe(c: PusherConnection, payload: Json | undefined): void {
    const channel = asObject(payload)?.channel;
    if (typeof channel !== 'string' || !c.subs.has(channel)) return; // Pusher ignores these silently
    this.leave(c, channel);
  }

  /** Ends a subscription (unsubscribe or disconnect): the room membership and its presence. */
  leave(c: PusherConnection, channel: string): void {
    const sub = c.subs.get(channel);
    if (sub === undefined) return;
    c.subs.delete(channel);
    const ms = sub.membership;
    if (ms.local === null) return; // still acquiring: completeSubscribe sees the removal and releases
    const local = ms.local;
    ms.local = null;
    local.members.delete(ms);
    this.ctx.metrics.roomMemberships.dec();
    this.ctx.rooms.release(local);
    const pc = this.presenceConn(c, sub);
    this.ctx.engines.presence
      .leave(sub.ref, pc)
      .then(async ({ changed }) => {
        // A presence subscription is a presence connection of its own: it goes with its subscription.
        await this.ctx.engines.presence.disconnect(pc);
        if (changed && sub.presence !== undefined) this.announce(sub.ref, 'leave', sub.presence.user);
      })
      .catch((err: unknown) => this.ctx.log.warn({ err, room: channel }, 'presence leave failed'));
  }

  private async clientEvent(c: PusherConnection, event: string, channel: string | undefined, data: Json | undefined): Promise<void> {
    if (!c.app.clientEvents)
      return this.refuse(c, 'forbidden', PusherErrorCode.generic, `To send client events, you must enable this feature in the app's settings.`);
    if (channel === undefined) return this.refuse(c, 'bad_request', PusherErrorCode.generic, 'a client event needs a channel');
    const sub = c.subs.get(channel);
    if (sub === undefined || sub.membership.local === null) return this.refuse(c, 'not_joined', PusherErrorCode.generic, `not subscribed to ${channel}`);
    if (sub.kind !== 'private' && sub.kind !== 'presence') {
      return this.refuse(c, 'forbidden', PusherErrorCode.generic, 'client events are allowed on private and presence channels only (not public or encrypted)');
    }
    const now = Date.now();
    if (now - c.clientEventsWindow >= 1000) {
      c.clientEventsWindow = now;
      c.clientEvents = 0;
    }
    if (++c.clientEvents > c.app.clientEventsPerSecond) {
      return this.refuse(c, 'rate_limited', PusherErrorCode.clientEventRateLimit, `client events are limited to ${c.app.clientEventsPerSecond} a second`);
    }
    const value: Json = data ?? null;
    const size = Buffer.byteLength(typeof value === 'string' ? value : JSON.stringify(value));
    if (size > c.app.maxEventBytes)
      return this.refuse(c, 'frame_too_large', PusherErrorCode.generic, `event data of ${size} bytes is over ${c.app.maxEventBytes}`);
    const from = sub.presence?.user ?? c.socketId;
    await this.ctx.edge.publish('pusher', { tenant: c.app.id, room: channel, from, data: value, event, except: c.socketId });
    this.ctx.webhooks?.clientEvent({
      ref: sub.ref,
      event,
      data: value,
      socketId: c.socketId,
      ...(sub.presence !== undefined ? { user: sub.presence.user } : {}),
    });
  }
}

/** The channel_data of a presence subscription: `user_id` (a string or number) and optional `user_info`. */
function parseChannelData(text: string): { user: string; info: Json | undefined } | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'channel_data is not valid JSON';
  }
  const o = asObject(raw as Json);
  const id = o?.user_id;
  const user = typeof id === 'number' && Number.isFinite(id) ? String(id) : id;
  if (typeof user !== 'string' || !isUserId(user)) return `channel_data.user_id: ${USER_ID_RULE}`;
  return { user, info: o?.user_info };
}

function asObject(v: Json | undefined): { [key: string]: Json } | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : null;
}

/** The member list of `subscription_succeeded`: every online user once, with the info they subscribed with. */
function toHash(members: readonly { user: string; online: boolean; info?: Json }[], self: { user: string; info: Json | undefined }): PresenceHash {
  const hash: Record<string, Json> = {};
  for (const m of members) if (m.online) hash[m.user] = m.info ?? null;
  hash[self.user] = self.info ?? hash[self.user] ?? null;
  const ids = Object.keys(hash);
  return { ids, hash, count: ids.length };
}
