/**
 * The Pusher side of a node's WebSocket endpoint: `/app/:key?protocol=7` upgrades (the node's admission
 * control first, then the app's key, protocol version and connection quota, refused the way Pusher refuses:
 * `pusher:error` and a close code), the connection set, heartbeats (`pusher:ping` after `activity_timeout`
 * without traffic, close 4201 without a pong), slow-consumer cut-off (4100), disconnect clean-up and the drain
 * (each client closed with 4200 at its own time within the spread, so their reconnects are spread too).
 */
import { randomInt } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { PusherApp } from '../config/schema.js';
import { connectionEstablished, PUSHER_PING, PUSHER_PROTOCOL, PusherClose, RESUME_QUERY } from '../protocol/pusher.js';
import { DrainSchedule, type DrainHooks, type DrainResult } from '../gateway/drain.js';
import { rejectUpgrade } from '../gateway/gateway.js';
import { PusherConnection } from './connection.js';
import type { PusherDeps } from './deps.js';
import { PusherSession } from './session.js';

export class PusherGateway {
  readonly conns = new Set<PusherConnection>();
  readonly session: PusherSession;
  private readonly appsByKey = new Map<string, PusherApp>();
  private readonly perApp = new Map<string, number>();
  private readonly wss: WebSocketServer;
  /** The first part of this node's socket ids: random, so ids are unique across the cluster. */
  private readonly nodeNumber = randomInt(1, 2 ** 31);
  private counter = 0;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly presenceTimer: NodeJS.Timeout;
  private reconciling = false;

  constructor(private readonly ctx: PusherDeps) {
    for (const app of ctx.config.pusherApps) this.appsByKey.set(app.key, app);
    this.session = new PusherSession(ctx);
    const largest = Math.max(10_240, ...ctx.config.pusherApps.map((a) => a.maxEventBytes));
    this.wss = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false, maxPayload: (largest + 4096) * 4 });
    this.sweepTimer = setInterval(() => this.sweep(), 1_000);
    this.sweepTimer.unref();
    this.presenceTimer = setInterval(() => this.refreshPresence(), Math.max(100, Math.floor(ctx.config.presenceTtlMs / 3)));
    this.presenceTimer.unref();
  }

  /** Whether this node serves any Pusher app (the endpoint exists only then). */
  get enabled(): boolean {
    return this.appsByKey.size > 0;
  }

  app(key: string): PusherApp | undefined {
    return this.appsByKey.get(key);
  }

  /** HTTP `upgrade` handler for `/app/…`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const result = this.ctx.admission.tryAdmit(this.ctx.openConnections());
    this.ctx.metrics.admission.inc({ result });
    if (result !== 'admitted') {
      rejectUpgrade(socket, 503, 'Service Unavailable', `connection refused (${result}); retry later`, this.ctx.admission.retryAfterS());
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(req, ws, socket as Socket));
  }

  private accept(req: IncomingMessage, ws: WebSocket, socket: Socket): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const match = /^\/app\/([^/]+)$/.exec(url.pathname);
    const app = match !== null ? this.appsByKey.get(decodeURIComponent(match[1]!)) : undefined;
    const refusal =
      match === null
        ? ([PusherClose.pathNotFound, 'Path not found: connect to /app/<key>'] as const)
        : app === undefined
          ? ([PusherClose.appNotFound, `App key ${match[1]!.slice(0, 64)} not in this cluster`] as const)
          : versionRefusal(url.searchParams.get('protocol'));
    if (refusal === null && app!.maxConnections !== undefined && (this.perApp.get(app!.id) ?? 0) >= app!.maxConnections) {
      return this.refuse(ws, PusherClose.overQuota, `App ${app!.id} is over its connection quota`);
    }
    if (refusal !== null) return this.refuse(ws, refusal[0], refusal[1]);
    const resume = url.searchParams.get(RESUME_QUERY) === '1';
    const c = new PusherConnection(`${this.nodeNumber}.${++this.counter}`, app!, ws, socket, this.ctx.outbox, this.onSlowConsumer, resume);
    this.conns.add(c);
    this.perApp.set(app!.id, (this.perApp.get(app!.id) ?? 0) + 1);
    this.ctx.metrics.connectionOpened('pusher');
    c.send(connectionEstablished(c.socketId, this.ctx.config.pusherActivityTimeoutS));
    // The handshake completed after the drain began: send it elsewhere at once.
    if (this.ctx.admission.draining) this.drainSchedule?.add(c);
    ws.on('message', (data, isBinary) => this.session.onMessage(c, data as Buffer, isBinary));
    ws.on('close', (code) => this.closed(c, code));
    ws.on('error', () => {
      this.ctx.edge.counted('bad_frame');
    });
  }

  /** Pusher's refusal: `pusher:error` with the code, then a close with the same code. */
  private refuse(ws: WebSocket, code: number, message: string): void {
    this.ctx.edge.counted(code === PusherClose.overQuota ? 'rate_limited' : code === PusherClose.appNotFound ? 'unauthorized' : 'bad_request');
    ws.send(JSON.stringify({ event: 'pusher:error', data: { code, message } }));
    ws.close(code, message.slice(0, 120));
    setTimeout(() => ws.terminate(), 2_000).unref();
  }

  private readonly onSlowConsumer = (slow: PusherConnection): void => {
    this.ctx.metrics.slowConsumers.inc();
    this.ctx.log.warn({ conn: slow.socketId, app: slow.app.id }, 'slow consumer disconnected');
    slow.cut(PusherClose.slowConsumer, 'slow consumer');
  };

  private closed(c: PusherConnection, code: number): void {
    if (!this.conns.delete(c)) return;
    c.dead = true;
    c.queue = null;
    const n = (this.perApp.get(c.app.id) ?? 1) - 1;
    if (n > 0) this.perApp.set(c.app.id, n);
    else this.perApp.delete(c.app.id);
    this.ctx.metrics.connectionClosed('pusher', closeLabel(c.closeCode || code));
    for (const channel of [...c.subs.keys()]) this.session.leave(c, channel);
    if (c.user !== null) this.ctx.users.remove(c.app.id, c.user, c);
  }

  /** Heartbeats: a `pusher:ping` after activity_timeout without traffic, a close (4201) without its pong. */
  private sweep(): void {
    const now = Date.now();
    const idleMs = this.ctx.config.pusherActivityTimeoutS * 1000;
    for (const c of this.conns) {
      if (c.dead) continue;
      this.ctx.outbox.checkSlow(c, now);
      if (c.pingSentAt > 0) {
        if (now - c.pingSentAt > this.ctx.config.pingTimeoutMs) {
          this.ctx.metrics.heartbeatTimeouts.inc();
          c.close(PusherClose.pongTimeout, 'Pong reply not received');
        }
      } else if (now - c.lastRecv > idleMs) {
        c.send(PUSHER_PING);
        c.pingSentAt = now;
      }
    }
  }

  /** Every live subscription is a presence connection (see PusherSession.presenceConn): keep them alive. */
  private refreshPresence(): void {
    const ids: string[] = [];
    for (const c of this.conns) {
      if (c.dead) continue;
      for (const sub of c.subs.values()) ids.push(this.session.presenceConn(c, sub).connId);
    }
    if (ids.length === 0) return;
    this.ctx.engines.presence.heartbeat(this.ctx.nodeId, ids).catch((err: unknown) => this.ctx.log.warn({ err }, 'presence heartbeat failed'));
    void this.reconcilePresence();
  }

  /**
   * Users who left a presence channel without a leave being announced (their node crashed: the presence store
   * expired them) are told to this node's members once, within about a third of the presence TTL of expiring:
   * each local presence channel's member list is compared with the store's.
   */
  private async reconcilePresence(): Promise<void> {
    if (this.reconciling) return;
    this.reconciling = true;
    try {
      for (const room of this.ctx.rooms.list()) {
        if (!room.tracksPresence || room.members.size === 0) continue;
        const readAt = Date.now();
        const members = await this.ctx.engines.presence.members(room.ref);
        room.reconcilePresence(new Set(members.filter((m) => m.online).map((m) => m.user)), readAt);
      }
    } catch (err) {
      this.ctx.log.warn({ err }, 'presence reconciliation failed; retried on the next beat');
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * Shutdown, on the gateway's drain schedule (gateway/drain.ts): each client is closed with 4200 (pusher-js
   * reconnects at once) at its own random time within drainSpreadMs, a few per event-loop turn, so their
   * reconnects are spread and the node keeps answering HTTP; what is left at drainTimeoutMs is terminated.
   * Pusher has no notice frame: a client marked leaving gets no more presence events until its close.
   */
  async drain(): Promise<DrainResult> {
    if (this.drainSchedule !== null) return { closed: 0, terminated: 0, ms: 0 };
    this.ctx.admission.draining = true;
    const { drainSpreadMs, drainTimeoutMs } = this.ctx.config;
    this.drainSchedule = new DrainSchedule(this.drainHooks, { spreadMs: drainSpreadMs, timeoutMs: drainTimeoutMs });
    return this.drainSchedule.run([...this.conns]);
  }

  private drainSchedule: DrainSchedule<PusherConnection> | null = null;

  private readonly drainHooks: DrainHooks<PusherConnection> = {
    notify: (c) => {
      c.leaving = true;
    },
    close: (c) => c.close(PusherClose.reconnect, 'node shutting down'),
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

/** Why the `protocol` query parameter is refused, or null for 7. */
function versionRefusal(protocol: string | null): readonly [number, string] | null {
  if (protocol === null) return [PusherClose.noVersion, 'No protocol version supplied'];
  if (!/^\d+$/.test(protocol)) return [PusherClose.invalidVersion, 'Invalid version string format'];
  if (Number(protocol) !== PUSHER_PROTOCOL)
    return [PusherClose.unsupportedVersion, `Unsupported protocol version ${protocol}; this server speaks ${PUSHER_PROTOCOL}`];
  return null;
}

const KNOWN = new Set<number>([1000, 1001, 1005, 1006, ...Object.values(PusherClose)]);
function closeLabel(code: number): string {
  return KNOWN.has(code) ? String(code) : 'other';
}
