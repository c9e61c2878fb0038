/**
 * The protocol state machine of one connection: parses and validates each client frame, then runs
 * connect / join / leave / publish / history / presence / ping. Every failure becomes a typed error frame
 * for this connection alone, counted by code.
 */
import { grantedIdentity } from '../auth/authenticator.js';
import type { Identity } from '../auth/identity.js';
import type { PresenceConn } from '../engines/presence/presence.js';
import type { Json, RoomRef } from '../engines/types.js';
import { CloseCodes } from '../protocol/close-codes.js';
import { messageFrame, toWire } from '../protocol/encode.js';
import { clientFrameSchema, CLIENT_FRAME_TYPES, PROTOCOL_VERSION, type ClientFrame, type RequestId, type WireMessage } from '../protocol/frames.js';
import { SwitchboardError } from '../protocol/errors.js';
import { isRoomName, isTenantName, isUserId, ROOM_NAME_RULE } from '../protocol/names.js';
import { exceedsDepth, MAX_JSON_DEPTH } from '../protocol/json-depth.js';
import type { Connection } from './connection.js';
import type { GatewayDeps } from './deps.js';
import type { Membership } from '../rooms/room.js';
import { recover } from '../messaging/recovery.js';
import { serviceFrame } from './service-frames.js';
import { encodeEnvelope, roomSubject } from '../messaging/subjects.js';

type Frame<T extends ClientFrame['type']> = Extract<ClientFrame, { type: T }>;

const MAX_BAD_FRAMES = 100;
/** Requests one connection may have in progress at once (publishes awaiting acks, joins, history…). */
export const MAX_INFLIGHT = 256;

export class Session {
  constructor(private readonly ctx: GatewayDeps) {}

  presenceConn(c: Connection): PresenceConn {
    return { tenant: c.identity!.tenant, user: c.identity!.user, connId: c.id, nodeId: this.ctx.nodeId };
  }

  /** Entry point for every text or binary message of a connection. */
  onMessage(c: Connection, data: Buffer, isBinary: boolean): void {
    c.lastRecv = Date.now();
    c.pingSentAt = 0;
    this.ctx.metrics.messagesIn.inc();
    let frame: ClientFrame | null;
    try {
      frame = this.parse(c, data, isBinary);
    } catch (err) {
      this.ctx.log.error({ err, conn: c.id }, 'frame parsing failed');
      c.sendError('bad_frame', 'frame could not be processed');
      frame = null;
    }
    if (frame === null) {
      if (++c.badFrames >= MAX_BAD_FRAMES) c.close(CloseCodes.protocolViolation, 'too many invalid frames');
      return;
    }
    if (c.authenticating && frame.type !== 'connect' && frame.type !== 'ping' && frame.type !== 'pong') {
      // Pipelined after connect (e.g. connect + join in one write): run once connect has finished.
      if (c.early.length < MAX_INFLIGHT) c.early.push(frame);
      else c.sendError('rate_limited', `more than ${MAX_INFLIGHT} frames sent before connect completed`, 'id' in frame ? frame.id : undefined);
      return;
    }
    this.run(c, frame);
  }

  private run(c: Connection, frame: ClientFrame): void {
    const room = 'room' in frame ? frame.room : undefined;
    const id = 'id' in frame ? frame.id : undefined;
    if (c.inflight >= MAX_INFLIGHT) {
      c.sendError('rate_limited', `more than ${MAX_INFLIGHT} requests in flight on this connection; wait for replies`, id, room);
      return;
    }
    c.inflight++;
    this.dispatch(c, frame)
      .catch((err: unknown) => this.fail(c, err, id, room))
      .finally(() => {
        c.inflight--;
      });
  }

  private parse(c: Connection, data: Buffer, isBinary: boolean): ClientFrame | null {
    if (isBinary) {
      c.sendError('bad_frame', 'protocol v1 uses JSON text frames; binary frames are not accepted');
      return null;
    }
    if (data.length > this.ctx.config.maxFrameBytes) {
      c.sendError('frame_too_large', `frame of ${data.length} bytes exceeds the limit of ${this.ctx.config.maxFrameBytes}`);
      return null;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString('utf8'));
    } catch {
      c.sendError('bad_json', 'frame is not valid JSON');
      return null;
    }
    if (exceedsDepth(raw, MAX_JSON_DEPTH)) {
      c.sendError('bad_frame', `frame nests deeper than ${MAX_JSON_DEPTH} levels`);
      return null;
    }
    const parsed = clientFrameSchema.safeParse(raw);
    if (parsed.success) return parsed.data;
    const obj = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
    const id = typeof obj.id === 'number' || typeof obj.id === 'string' ? obj.id : undefined;
    if (typeof obj.type !== 'string' || !CLIENT_FRAME_TYPES.includes(obj.type)) {
      c.sendError('unknown_type', `unknown frame type ${JSON.stringify(obj.type ?? null)}; expected one of ${CLIENT_FRAME_TYPES.join(', ')}`, id);
    } else {
      const issue = parsed.error.issues[0];
      c.sendError('bad_frame', `invalid ${obj.type} frame: ${issue ? `${issue.path.join('.') || 'frame'}: ${issue.message}` : 'schema mismatch'}`, id);
    }
    return null;
  }

  private fail(c: Connection, err: unknown, id: RequestId | undefined, room?: string): void {
    const e = this.ctx.edge.asError(err, { conn: c.id });
    c.sendError(e.code, e.message, id, room);
    if (e.code === 'unauthorized') c.close(CloseCodes.unauthorized, 'unauthorized');
    if (e.code === 'token_expired') c.close(CloseCodes.tokenExpired, 'token expired');
  }

  private async dispatch(c: Connection, f: ClientFrame): Promise<void> {
    if (f.type === 'pong') return;
    if (f.type === 'ping') {
      c.sendFrame(f.id !== undefined ? { type: 'pong', id: f.id } : { type: 'pong' });
      return;
    }
    if (f.type === 'connect') return this.connect(c, f);
    if (c.identity === null) {
      c.sendError('not_connected', 'send a connect frame first', f.id);
      return;
    }
    switch (f.type) {
      case 'join':
        return this.join(c, f);
      case 'leave':
        return this.leave(c, f);
      case 'publish':
        return this.publish(c, f);
      case 'history':
        return this.history(c, f);
      case 'presence':
        return this.presenceList(c, f);
      case 'send':
      case 'rpc':
        return serviceFrame(this.ctx, c, f);
      case 'refresh':
        return this.refresh(c, f);
    }
  }

  private async connect(c: Connection, f: Frame<'connect'>): Promise<void> {
    if (c.identity !== null || c.authenticating) {
      c.sendError('already_connected', 'this connection already sent connect', f.id);
      return;
    }
    if (f.protocol !== undefined && f.protocol !== PROTOCOL_VERSION) {
      c.sendError('bad_request', `protocol ${f.protocol} is not supported; this node speaks ${PROTOCOL_VERSION}`, f.id);
      return;
    }
    if (f.batch === true) c.batch = true;
    c.authenticating = true;
    let failure: { err: unknown } | null = null;
    try {
      await this.authenticateAndRegister(c, f);
    } catch (err) {
      failure = { err };
    }
    c.authenticating = false;
    const held = c.early.splice(0);
    if (failure !== null) return this.refuseConnect(c, failure.err, f.id, held);
    if (!c.dead) for (const frame of held) this.run(c, frame);
  }

  /**
   * A failed connect: its own error first, then every frame held behind it (pipelined), in order, each
   * answered `not_connected`; then the close, if the failure is terminal for this socket (nothing may
   * follow a close frame, RFC 6455 §5.5.1, so frames that arrive after it get no reply).
   */
  private refuseConnect(c: Connection, err: unknown, id: RequestId | undefined, held: ClientFrame[]): void {
    if (c.dead) return;
    let error: SwitchboardError;
    if (err instanceof SwitchboardError) {
      error = err;
    } else {
      this.ctx.log.error({ err, conn: c.id }, 'request failed');
      error = new SwitchboardError('internal', 'internal error');
    }
    c.sendError(error.code, error.message, id);
    for (const frame of held) {
      c.sendError(
        'not_connected',
        `not run: the connect before it failed (${error.code})`,
        'id' in frame ? frame.id : undefined,
        'room' in frame ? frame.room : undefined,
      );
    }
    if (error.code === 'unauthorized') c.close(CloseCodes.unauthorized, 'unauthorized');
    else if (error.code === 'token_expired') c.close(CloseCodes.tokenExpired, 'token expired');
    else if (error.code === 'token_revoked') c.close(CloseCodes.tokenRevoked, 'token revoked');
    else if (error.code === 'too_many_connections') c.close(CloseCodes.tooManyConnections, 'too many connections for this user');
    // Half-registered connections are not kept: the client reconnects (4000 is in the reconnect range).
    else if (error.code === 'unavailable') c.close(CloseCodes.internal, 'connect failed');
  }

  private async authenticateAndRegister(c: Connection, f: Frame<'connect'>): Promise<void> {
    const identity =
      (f.token === undefined || f.token === '') && this.ctx.hooks.connect !== undefined
        ? await this.hookIdentity(c, f)
        : await this.ctx.auth.authenticate(f.token, f.user);
    if (c.dead) return;
    if (this.ctx.engines.revocations.isRevoked(identity)) throw new SwitchboardError('token_revoked', 'this token has been revoked');
    const perUser = this.ctx.config.maxConnectionsPerUser;
    if (perUser > 0) {
      // Every node's connections of the user (presence), then this node's again right before registering (users.add
      // below, in the same turn), so concurrent connects to one node cannot both pass; connects racing on two nodes can.
      let cluster: number;
      try {
        cluster = (await this.ctx.engines.presence.user(identity.tenant, identity.user)).connections;
      } catch (err) {
        throw new SwitchboardError('unavailable', 'presence unavailable; reconnect', { cause: err });
      }
      if (c.dead) return;
      if (Math.max(cluster, this.ctx.users.count(identity.tenant, identity.user)) >= perUser) {
        throw new SwitchboardError('too_many_connections', `user ${identity.user} already has ${perUser} connections`);
      }
    }
    c.identity = identity;
    const pc = this.presenceConn(c);
    try {
      await Promise.all([this.ctx.engines.presence.connect(pc), this.ctx.users.add(identity.tenant, identity.user, c)]);
    } catch (err) {
      this.ctx.log.error({ err, conn: c.id }, 'connect registration failed');
      throw new SwitchboardError('unavailable', 'presence or backplane unavailable; reconnect', { cause: err });
    }
    const { config } = this.ctx;
    c.sendFrame({
      type: 'connected',
      ...(f.id !== undefined ? { id: f.id } : {}),
      connId: c.id,
      node: this.ctx.nodeId,
      user: identity.user,
      tenant: identity.tenant,
      protocol: PROTOCOL_VERSION,
      pingIntervalMs: config.pingIntervalMs,
      pingTimeoutMs: config.pingTimeoutMs,
      maxFrameBytes: config.maxFrameBytes,
      ...(identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {}),
    });
  }

  /**
   * A connect without a token, asked of the connect hook: it is sent the upgrade's chosen headers and cookies and the
   * frame's `data`, and answers who the connection is and what it may do. A refusal is `unauthorized` (close 4500);
   * a hook that does not answer, `unavailable` (close 4000: the client retries).
   */
  private async hookIdentity(c: Connection, f: Frame<'connect'>): Promise<Identity> {
    let answer;
    try {
      answer = await this.ctx.hooks.connect!.ask({
        node: this.ctx.nodeId,
        conn: c.id,
        headers: c.hookCredentials?.headers ?? {},
        cookies: c.hookCredentials?.cookies ?? {},
        ...(f.data !== undefined ? { data: f.data } : {}),
      });
    } catch (err) {
      if (err instanceof SwitchboardError && err.code === 'refused') throw new SwitchboardError('unauthorized', err.message);
      throw err;
    }
    if (answer === null) throw new SwitchboardError('unavailable', 'the connect hook did not answer'); // connect never fails open
    if (!isUserId(answer.user) || (answer.tenant !== undefined && !isTenantName(answer.tenant))) {
      this.ctx.metrics.hookRequests.inc({ hook: 'connect', result: 'error' });
      throw new SwitchboardError('unavailable', 'the connect hook answered an invalid user or tenant name');
    }
    return { ...grantedIdentity(answer), ...(answer.expiresAt !== undefined ? { expiresAt: answer.expiresAt } : {}) };
  }

  /**
   * A newer token for this connection: the same user and tenant, not revoked, allowing every room the connection
   * has joined (leave a room first to give it up). The connection then runs under the new token's rights and
   * expiry. A refused refresh changes nothing: the current token holds until it expires.
   */
  private async refresh(c: Connection, f: Frame<'refresh'>): Promise<void> {
    const refuse = (code: 'unauthorized' | 'token_expired' | 'token_revoked' | 'forbidden', message: string): void => {
      this.ctx.metrics.tokenRefreshes.inc({ result: code });
      c.sendError(code, message, f.id);
    };
    let identity: Identity;
    try {
      identity = await this.ctx.auth.authenticate(f.token, undefined);
    } catch (err) {
      if (err instanceof SwitchboardError && (err.code === 'unauthorized' || err.code === 'token_expired')) return refuse(err.code, err.message);
      return this.fail(c, err, f.id);
    }
    if (c.dead) return;
    const current = c.identity!;
    if (identity.user !== current.user || identity.tenant !== current.tenant) {
      return refuse('forbidden', 'the new token is for another user or tenant than this connection');
    }
    if (this.ctx.engines.revocations.isRevoked(identity)) return refuse('token_revoked', 'the new token has been revoked');
    for (const room of c.rooms.keys()) {
      if (!identity.canJoin(room)) return refuse('forbidden', `the new token does not allow room ${room}, which this connection has joined; leave it first`);
    }
    c.identity = identity;
    this.ctx.metrics.tokenRefreshes.inc({ result: 'ok' });
    c.sendFrame({ type: 'refreshed', id: f.id, ...(identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {}) });
  }

  private checkRoom(c: Connection, room: string, right: 'join' | 'publish'): RoomRef {
    if (!isRoomName(room)) throw new SwitchboardError('bad_room', `invalid room name: ${ROOM_NAME_RULE}`);
    const id = c.identity!;
    const allowed = right === 'join' ? id.canJoin(room) : id.canPublish(room);
    if (!allowed) throw new SwitchboardError('forbidden', `the token does not allow ${right} on room ${room}`);
    return { tenant: id.tenant, room };
  }

  private async join(c: Connection, f: Frame<'join'>): Promise<void> {
    let ref: RoomRef;
    try {
      ref = this.checkRoom(c, f.room, 'join');
    } catch (err) {
      return this.fail(c, err, f.id, f.room);
    }
    if (c.rooms.has(f.room)) return c.sendError('bad_request', `already joined room ${f.room}`, f.id, f.room);
    if (c.rooms.size >= this.ctx.config.maxRoomsPerConnection) {
      return c.sendError('too_many_rooms', `a connection may join at most ${this.ctx.config.maxRoomsPerConnection} rooms`, f.id, f.room);
    }
    const ms: Membership = { conn: c, local: null, pending: [], skipUpTo: 0 };
    c.rooms.set(f.room, ms);
    try {
      const hook = this.ctx.hooks.join;
      let info: Json | undefined;
      if (hook !== undefined) {
        const id = c.identity!;
        info = (await hook.ask({ node: this.ctx.nodeId, conn: c.id, tenant: id.tenant, user: id.user, room: f.room }))?.info;
        if (c.rooms.get(f.room) !== ms || c.dead) {
          if (c.rooms.get(f.room) === ms) c.rooms.delete(f.room);
          if (!c.dead) c.sendError('not_joined', `room ${f.room} was left before the join completed`, f.id, f.room);
          return;
        }
      }
      await this.completeJoin(c, f, ref, ms, info);
    } catch (err) {
      // A failed join leaves nothing behind: no half-joined membership buffering frames.
      if (c.rooms.get(f.room) === ms) this.leaveRoom(c, f.room);
      throw err;
    }
  }

  /** `info`: what the join hook said the user is shown with in this room's presence. */
  private async completeJoin(c: Connection, f: Frame<'join'>, ref: RoomRef, ms: Membership, info?: Json): Promise<void> {
    try {
      ms.local = await this.ctx.rooms.acquire(ref);
    } catch (err) {
      if (c.rooms.get(f.room) === ms) c.rooms.delete(f.room);
      throw new SwitchboardError('unavailable', 'could not subscribe the room', { cause: err });
    }
    if (c.rooms.get(f.room) !== ms || c.dead) {
      // Left or closing meanwhile: undo this join completely (the membership never became live).
      if (c.rooms.get(f.room) === ms) c.rooms.delete(f.room);
      this.ctx.rooms.release(ms.local);
      ms.local = null;
      if (!c.dead) c.sendError('not_joined', `room ${f.room} was left before the join completed`, f.id, f.room);
      return;
    }
    ms.local.members.add(ms);
    this.ctx.metrics.roomMemberships.inc();
    const start = ms.local.position();
    const pc = this.presenceConn(c);
    this.announce(ref, 'join', c.identity!.user, this.ctx.engines.presence.join(ref, info === undefined ? pc : { ...pc, info }));

    let recovery: 'none' | 'recovered' | 'reset' = 'none';
    let frames: Buffer[] = [];
    let position = start;
    if (f.since !== undefined) {
      this.ctx.metrics.noteReconnect(c);
      let outcome;
      try {
        outcome = await recover(this.ctx.engines.roomLog, this.ctx.holes, ref, f.since, this.ctx.config.recoveryMaxGap);
      } catch (err) {
        throw new SwitchboardError('unavailable', 'recovery failed: the recent window or history is unavailable; retry the join', { cause: err });
      }
      if (c.dead) return;
      if (outcome.kind === 'recovered') {
        frames = outcome.messages.map(messageFrame);
        // A recovery larger than half the hard output bound would cut the client every time: reset instead.
        const bytes = frames.reduce((n, b) => n + b.length, 0);
        if (bytes > this.ctx.config.maxBufferedBytes / 2) outcome = { kind: 'reset', position: outcome.position, reason: 'size' };
      }
      if (outcome.kind === 'recovered' && ms.overflow !== true) {
        recovery = 'recovered';
        position = { seq: Math.max(outcome.position.seq, f.since.seq), epoch: outcome.position.epoch };
        this.ctx.metrics.recoveries.inc({ result: outcome.source });
      } else {
        recovery = 'reset';
        frames = [];
        this.ctx.metrics.recoveries.inc({ result: `reset_${outcome.kind === 'reset' ? outcome.reason : 'overflow'}` });
      }
    }
    if (c.rooms.get(f.room) !== ms) {
      c.sendError('not_joined', `room ${f.room} was left before the join completed`, f.id, f.room);
      return;
    }
    if (ms.overflow === true) {
      // The room moved on by more than MAX_PENDING messages while joining: start from where it is now.
      recovery = f.since !== undefined ? 'reset' : 'none';
      frames = [];
      position = ms.local.position();
      ms.pending = [];
    }
    c.sendFrame({ type: 'joined', id: f.id, room: f.room, seq: position.seq, epoch: position.epoch, recovery, missed: frames.length });
    for (const frame of frames) c.send(frame);
    ms.skipUpTo = position.seq;
    for (const [seq, frame] of ms.pending ?? []) {
      if (seq > ms.skipUpTo) {
        c.send(frame);
        ms.skipUpTo = seq;
      }
    }
    ms.pending = null;
  }

  /** Records a presence change and, when it is the user's first join / last leave, tells the room. */
  private announce(ref: RoomRef, kind: 'join' | 'leave', user: string, change: Promise<{ changed: boolean }>): void {
    change
      .then(async ({ changed }) => {
        if (!changed) return;
        return this.ctx.engines.backplane.publish(roomSubject(ref), encodeEnvelope({ k: 'p', kind, user, at: Date.now() }));
      })
      .catch((err: unknown) => this.ctx.log.warn({ err, room: ref.room }, 'presence update failed'));
  }

  private async leave(c: Connection, f: Frame<'leave'>): Promise<void> {
    if (!c.rooms.has(f.room)) return c.sendError('not_joined', `not a member of room ${f.room}`, f.id, f.room);
    this.leaveRoom(c, f.room);
    c.sendFrame({ type: 'left', id: f.id, room: f.room });
  }

  /** Removes a membership (explicit leave or disconnect). */
  leaveRoom(c: Connection, room: string): void {
    const ms = c.rooms.get(room);
    if (ms === undefined) return;
    c.rooms.delete(room);
    if (ms.local === null) return; // join still acquiring: it sees the removal and releases
    const local = ms.local;
    const ref = local.ref;
    ms.local = null;
    local.members.delete(ms);
    this.ctx.metrics.roomMemberships.dec();
    this.ctx.rooms.release(local);
    this.announce(ref, 'leave', c.identity!.user, this.ctx.engines.presence.leave(ref, this.presenceConn(c)));
  }

  private async publish(c: Connection, f: Frame<'publish'>): Promise<void> {
    try {
      // The connection's own checks (its token's rights, its memberships); the rest is the edge's.
      this.checkRoom(c, f.room, 'publish');
      if (!c.rooms.has(f.room)) throw new SwitchboardError('not_joined', `join room ${f.room} before publishing to it`);
      this.takePublishToken(c);
      const id = c.identity!;
      let data = f.data;
      let event = f.event;
      const hook = this.ctx.hooks.publish;
      if (hook !== undefined) {
        // Validated (or rewritten, or refused) by the app before it is sequenced; a rewrite is checked by the edge like any publish.
        const answer = await hook.ask({
          node: this.ctx.nodeId,
          conn: c.id,
          tenant: id.tenant,
          user: id.user,
          room: f.room,
          data: f.data,
          ...(f.event !== undefined ? { event: f.event } : {}),
          ...(f.idem !== undefined ? { idem: f.idem } : {}),
        });
        if (answer?.data !== undefined) data = answer.data;
        if (answer?.event !== undefined) event = answer.event;
      }
      const reply = await this.ctx.edge.publish('ws', {
        tenant: id.tenant,
        room: f.room,
        from: id.user,
        data,
        ...(f.idem !== undefined ? { idem: f.idem } : {}),
        ...(event !== undefined ? { event } : {}),
        ...(f.key !== undefined ? { key: f.key } : {}),
      });
      if ('seq' in reply) {
        c.sendFrame({ type: 'ack', id: f.id, room: f.room, seq: reply.seq, epoch: reply.epoch, duplicate: reply.duplicate });
        if (!reply.duplicate)
          // What the room got: after the publish hook's rewrite, if any.
          this.ctx.webhooks?.clientEvent({
            ref: { tenant: id.tenant, room: f.room },
            event: event ?? 'message',
            data,
            socketId: c.id,
            user: id.user,
          });
      }
    } catch (err) {
      this.fail(c, err, f.id, f.room);
    }
  }

  /**
   * The per-connection publish rate (publishRatePerConnection): a token bucket of one second's worth, refilled
   * continuously; an empty bucket refuses the publish with `rate_limited` (retryable), the connection stays.
   */
  private takePublishToken(c: Connection): void {
    const rate = this.ctx.config.publishRatePerConnection;
    if (rate === 0) return;
    const now = Date.now();
    const tokens = c.publishTokens < 0 ? rate : Math.min(rate, c.publishTokens + ((now - c.publishFilledAt) / 1000) * rate);
    c.publishFilledAt = now;
    if (tokens < 1) {
      c.publishTokens = tokens;
      throw new SwitchboardError('rate_limited', `more than ${rate} publishes a second on this connection; retry later`);
    }
    c.publishTokens = tokens - 1;
  }

  private async history(c: Connection, f: Frame<'history'>): Promise<void> {
    try {
      const ref = this.checkRoom(c, f.room, 'join');
      const page = await this.ctx.edge.history(ref, {
        ...(f.limit !== undefined ? { limit: f.limit } : {}),
        ...(f.before !== undefined ? { before: f.before } : {}),
        ...(f.after !== undefined ? { after: f.after } : {}),
      });
      const { messages, trimmed } = fitPage(page.messages.map(toWire), this.ctx.config.maxBufferedBytes / 2, f.after !== undefined);
      c.sendFrame({ type: 'history.page', id: f.id, room: f.room, messages, more: page.more || trimmed });
    } catch (err) {
      this.fail(c, err, f.id, f.room);
    }
  }

  private async presenceList(c: Connection, f: Frame<'presence'>): Promise<void> {
    try {
      const members = await this.ctx.edge.presence(this.checkRoom(c, f.room, 'join'));
      c.sendFrame({ type: 'presence.list', id: f.id, room: f.room, members: members.map((m) => ({ ...m })) });
    } catch (err) {
      this.fail(c, err, f.id, f.room);
    }
  }
}

/**
 * Trims a history page to at most `budget` bytes of JSON, keeping the messages next to the cursor: for
 * `before`/newest paging the newest, for `after` paging the oldest. The client pages on for the rest.
 */
function fitPage(messages: WireMessage[], budget: number, fromOldest: boolean): { messages: WireMessage[]; trimmed: boolean } {
  let total = 0;
  const order = fromOldest ? messages : [...messages].reverse();
  let keep = 0;
  for (const m of order) {
    total += JSON.stringify(m).length + 1;
    if (total > budget && keep > 0) break;
    keep++;
  }
  if (keep === messages.length) return { messages, trimmed: false };
  return { messages: fromOldest ? messages.slice(0, keep) : messages.slice(messages.length - keep), trimmed: true };
}
