/**
 * The WebSocket side of a node: admission of upgrades, the connection set, heartbeats, slow-consumer
 * cut-off, disconnect clean-up and the shutdown drain.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { RoomCodec } from '../rooms/room.js';
import { CloseCodes } from '../protocol/close-codes.js';
import { wireFrame } from '../protocol/encode.js';
import { SUBPROTOCOL } from '../protocol/frames.js';
import type { Admission } from './admission.js';
import { DEFLATE_OFFER, deflateCodec, sharesDeflate } from './compression.js';
import { Connection } from './connection.js';
import type { GatewayDeps } from './deps.js';
import { DrainSchedule, type DrainHooks, type DrainResult } from './drain.js';
import { Session } from './session.js';

const PING = wireFrame({ type: 'ping' });

export class Gateway {
  readonly conns = new Set<Connection>();
  readonly session: Session;
  private readonly wss: WebSocketServer;
  private counter = 0;
  /**
   * This process's part of every connection id (`<node>-<boot>-<counter>`): a node restarted with the same
   * `--node-id` must not hand out the ids of its previous life, whose presence entries live on until the TTL.
   */
  private readonly boot = randomBytes(3).toString('hex');
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly presenceTimer: NodeJS.Timeout;
  private drainSchedule: DrainSchedule<Connection> | null = null;
  /** The room codec of connections that negotiated permessage-deflate (null with compression off). */
  private readonly deflate: RoomCodec | null;
  /** Upgrades whose 101 accepted permessage-deflate in a form that allows shared compressed frames. */
  private readonly deflated = new WeakSet<IncomingMessage>();

  constructor(
    private readonly ctx: GatewayDeps,
    readonly admission: Admission,
    /** Open connections of the node, every protocol (for the connection ceiling); this gateway's own by default. */
    private readonly openConnections: () => number = () => this.conns.size,
  ) {
    this.session = new Session(ctx);
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: ctx.config.compression ? DEFLATE_OFFER : false,
      // Hard cap: frames up to maxFrameBytes get a typed error, anything over 4x is cut by ws with 1009.
      maxPayload: ctx.config.maxFrameBytes * 4,
      // Select our subprotocol when offered and nothing else (ws would otherwise select the first one
      // offered, so a client asking for `mqtt` would be told it got `mqtt`). Other offers never get here.
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.deflate = ctx.config.compression ? deflateCodec(ctx.config.compressionThresholdBytes, (json, sent) => ctx.metrics.compressed(json, sent)) : null;
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      if (this.deflate !== null && sharesDeflate(headers)) this.deflated.add(req);
    });
    ctx.metrics.connectionsMax.set(ctx.config.maxConnections);
    const sweepMs = Math.max(50, Math.min(1000, Math.floor(Math.min(ctx.config.pingTimeoutMs, ctx.config.slowConsumerMs) / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.presenceTimer = setInterval(() => this.refreshPresence(), Math.max(100, Math.floor(ctx.config.presenceTtlMs / 3)));
    this.presenceTimer.unref();
  }

  /** HTTP `upgrade` handler: admission control, then the WebSocket handshake. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') {
      rejectUpgrade(socket, 404, 'Not Found', 'WebSocket endpoint is /ws');
      return;
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined && !offersSubprotocol(offered)) {
      // Checked before admission: a request this node cannot serve costs no admission token.
      this.ctx.edge.counted('bad_request');
      rejectUpgrade(socket, 400, 'Bad Request', `unsupported WebSocket subprotocol; offer ${SUBPROTOCOL} or none`);
      return;
    }
    const result = this.admission.tryAdmit(this.openConnections());
    this.ctx.metrics.admission.inc({ result });
    if (result !== 'admitted') {
      rejectUpgrade(socket, 503, 'Service Unavailable', `connection refused (${result}); retry later`, this.admission.retryAfterS());
      return;
    }
    const credentials = this.ctx.hooks.connect !== undefined ? hookCredentials(req, this.ctx.hooks.connectHeaders, this.ctx.hooks.connectCookies) : null;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket as Socket, credentials, this.deflated.has(req)));
  }

  /** One callback shared by every connection (not a closure per connection). */
  private readonly onSlowConsumer = (slow: Connection): void => {
    this.ctx.metrics.slowConsumers.inc();
    this.ctx.log.warn({ conn: slow.id, user: slow.identity?.user }, 'slow consumer disconnected');
    slow.cut(CloseCodes.slowConsumer, 'slow consumer');
  };

  private accept(ws: WebSocket, socket: Socket, credentials: Connection['hookCredentials'], deflate: boolean): void {
    const c = new Connection(`${this.ctx.nodeId}-${this.boot}-${(++this.counter).toString(36)}`, ws, socket, this.ctx, Date.now(), this.onSlowConsumer);
    c.hookCredentials = credentials;
    if (deflate && this.deflate !== null) {
      c.codec = this.deflate;
      this.ctx.metrics.deflateConnections.inc();
    }
    this.conns.add(c);
    this.ctx.metrics.connectionOpened('v1');
    // The handshake completed after the drain began: send it elsewhere at once.
    if (this.admission.draining) this.drainSchedule?.add(c);
    ws.on('message', (data, isBinary) => this.session.onMessage(c, data as Buffer, isBinary));
    ws.on('close', (code) => this.closed(c, code));
    ws.on('error', (err: Error & { code?: string }) => {
      // ws reports protocol violations (e.g. a frame over maxPayload) here and has already sent its close.
      const code = wsErrorCloseCode(err.code);
      this.ctx.edge.counted(code === CloseCodes.tooBig ? 'frame_too_large' : 'bad_frame');
      if (c.closeCode === 0) c.closeCode = code;
    });
  }

  private closed(c: Connection, code: number): void {
    if (!this.conns.delete(c)) return;
    c.dead = true;
    c.queue = null;
    this.ctx.metrics.connectionClosed('v1', closeLabel(c.closeCode || code));
    if (c.codec === this.deflate) this.ctx.metrics.deflateConnections.dec();
    for (const room of [...c.rooms.keys()]) this.session.leaveRoom(c, room);
    const id = c.identity;
    if (id !== null) {
      this.ctx.users.remove(id.tenant, id.user, c);
      this.ctx.engines.presence.disconnect(this.session.presenceConn(c)).catch((err: unknown) => this.ctx.log.warn({ err }, 'presence disconnect failed'));
    }
  }

  /** Pings, heartbeat deadlines, connect deadlines and token expiry, for all connections in one pass. */
  private sweep(): void {
    const now = Date.now();
    const { pingIntervalMs, pingTimeoutMs, connectTimeoutMs } = this.ctx.config;
    const revocations = this.ctx.engines.revocations.active() ? this.ctx.engines.revocations : null;
    for (const c of this.conns) {
      if (c.dead) continue;
      this.ctx.outbox.checkSlow(c, now);
      if (c.identity === null) {
        if (!c.authenticating && now - c.openedAt > connectTimeoutMs) c.close(CloseCodes.connectTimeout, 'no connect frame');
        continue;
      }
      if (c.identity.expiresAt !== undefined && now >= c.identity.expiresAt) {
        c.sendError('token_expired', 'token has expired; reconnect with a fresh token');
        c.close(CloseCodes.tokenExpired, 'token expired');
        continue;
      }
      // The identity is matched as it is: nothing is allocated per connection per sweep.
      if (revocations !== null && revocations.isRevoked(c.identity)) {
        c.sendError('token_revoked', 'the token of this connection has been revoked; reconnect with a fresh token');
        c.close(CloseCodes.tokenRevoked, 'token revoked');
        continue;
      }
      if (c.pingSentAt > 0) {
        if (now - c.pingSentAt > pingTimeoutMs) {
          this.ctx.metrics.heartbeatTimeouts.inc();
          c.close(CloseCodes.heartbeatTimeout, 'heartbeat timeout');
        }
      } else if (now >= c.nextPingAt) {
        c.send(PING);
        c.pingSentAt = now;
        c.nextPingAt = now + pingIntervalMs;
      }
    }
  }

  private refreshPresence(): void {
    const ids: string[] = [];
    for (const c of this.conns) if (c.identity !== null && !c.dead) ids.push(c.id);
    this.ctx.engines.presence.heartbeat(this.ctx.nodeId, ids).catch((err: unknown) => this.ctx.log.warn({ err }, 'presence heartbeat failed'));
  }

  /**
   * Shutdown: refuse new upgrades, tell every client to reconnect after its own random delay in
   * [0, drainSpreadMs) and close it when that delay ends, a few per event-loop turn (drain.ts), so the node
   * keeps answering HTTP meanwhile; resolves when every socket closed, or at drainTimeoutMs once the rest
   * was terminated.
   */
  async drain(): Promise<DrainResult> {
    if (this.drainSchedule !== null) return { closed: 0, terminated: 0, ms: 0 };
    this.admission.draining = true;
    const { drainSpreadMs, drainTimeoutMs } = this.ctx.config;
    this.drainSchedule = new DrainSchedule(this.drainHooks, { spreadMs: drainSpreadMs, timeoutMs: drainTimeoutMs });
    return this.drainSchedule.run([...this.conns]);
  }

  private readonly drainHooks: DrainHooks<Connection> = {
    notify: (c, reconnectAfterMs) => {
      c.leaving = true;
      c.sendFrame({ type: 'notice', code: 'reconnect', reason: 'node shutting down', reconnectAfterMs });
    },
    close: (c) => c.close(CloseCodes.shutdown, 'node shutting down'),
    terminate: (c) => c.ws.terminate(),
    isOpen: (c) => this.conns.has(c),
    canNotify: (c) => c.closeCode === 0,
  };

  close(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.presenceTimer);
    this.wss.close();
  }
}

const KNOWN_CLOSE_CODES = new Set<number>([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, ...Object.values(CloseCodes)]);

/**
 * The close code `ws` sends for a receive error (its `WS_ERR_*` code), so the disconnect is counted under
 * the code the client actually got.
 */
function wsErrorCloseCode(code: string | undefined): number {
  switch (code) {
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH':
      return CloseCodes.tooBig;
    case 'WS_ERR_INVALID_UTF8':
      return CloseCodes.invalidPayload;
    case 'WS_ERR_TOO_MANY_BUFFERED_PARTS':
      return CloseCodes.policyViolation;
    default:
      return CloseCodes.protocolError;
  }
}

/** Close codes as a metric label of bounded cardinality (a client may send any of ~2,000 codes). */
function closeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other';
}

/** Whether a `Sec-WebSocket-Protocol` header (a comma-separated list) offers protocol v1's name. */
function offersSubprotocol(header: string): boolean {
  return header.split(',').some((name) => name.trim() === SUBPROTOCOL);
}

/** Refuses an upgrade with a plain HTTP answer (and `Retry-After` when given), then ends the socket. */
export function rejectUpgrade(socket: Duplex, status: number, text: string, body: string, retryAfterS?: number): void {
  const headers = [
    `HTTP/1.1 ${status} ${text}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(retryAfterS !== undefined ? [`Retry-After: ${retryAfterS}`] : []),
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}

/** The upgrade request's headers and cookies the connect hook is configured to see (others are never kept). */
function hookCredentials(req: IncomingMessage, headers: readonly string[], cookies: readonly string[]): NonNullable<Connection['hookCredentials']> {
  const h: Record<string, string> = {};
  for (const name of headers) {
    const v = req.headers[name];
    if (v !== undefined) h[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  const c: Record<string, string> = {};
  if (cookies.length > 0) {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const name = part.slice(0, eq).trim();
      if (cookies.includes(name) && !(name in c)) c[name] = part.slice(eq + 1).trim();
    }
  }
  return { headers: h, cookies: c };
}
