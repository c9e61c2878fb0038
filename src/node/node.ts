/**
 * A Switchboard node: engines + gateway + HTTP server + history writer, started and stopped as one.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Authenticator } from '../auth/authenticator.js';
import { isClustered, type Config } from '../config/schema.js';
import { openEmbeddedEngines } from '../engines/embedded.js';
import type { Engines } from '../engines/engines.js';
import { NodeDirectory } from '../engines/backplane/directory.js';
import { TimedBackplane } from '../engines/backplane/timed.js';
import { HistoryWriter } from '../engines/messagestore/history-writer.js';
import { watchListener } from '../http/close.js';
import { createHttpServer, type Readiness } from '../http/server.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { Admission } from '../gateway/admission.js';
import type { GatewayDeps } from '../gateway/deps.js';
import { Gateway } from '../gateway/gateway.js';
import { NodeStats, type NodeInfo } from './node-stats.js';
import { FrameBatcher } from '../gateway/batch.js';
import { Outbox } from '../gateway/outbox.js';
import { Edge } from '../messaging/edge.js';
import { fillHoles, nodeHoleFilling } from '../messaging/history-fill.js';
import type { RoomMessage } from '../engines/types.js';
import { Publisher } from '../messaging/publisher.js';
import { RoomPolicies } from '../messaging/room-policy.js';
import { RoomRegistry } from '../rooms/rooms.js';
import { openNodeServices } from './services-node.js';
import { createHooks, fetchTransport } from '../hooks/hooks.js';
import { UserRouter } from '../rooms/users.js';
import { PusherGateway } from '../pusher/gateway.js';
import { PusherApi } from '../pusher/http-api.js';
import { openNodeWebhooks } from './webhooks-node.js';
import { openNodeRegions } from './regions-node.js';

export interface StartOptions {
  /** Engines to use instead of the embedded ones (cluster engines, or a shared in-process bus). */
  engines?: Engines;
  log?: Logger;
}

export interface RunningNode {
  readonly nodeId: string;
  readonly port: number;
  readonly server: Server;
  readonly gateway: Gateway;
  /** What the node's WebSocket side was given (its engines, edge, rooms…), for tests and tools. */
  readonly ctx: GatewayDeps;
  readiness(): Readiness;
  /** Drain clients (reconnect notices, each closed when its delay ends; HTTP answered meanwhile), close the
   * listener once its accept queue is quiet, stop the history writer after its in-flight batch, close engines
   * (publishes still waiting for the durable log are rejected: none of them was acked). */
  stop(): Promise<void>;
}

const GAP_WAIT_MS = 100;
/** How often a node announces itself and its figures to the cluster (admin page, `switchboard_cluster_nodes`). */
const ANNOUNCE_INTERVAL_MS = 2_000;

export async function startNode(config: Config, options: StartOptions = {}): Promise<RunningNode> {
  const nodeId = config.nodeId ?? `n-${randomBytes(4).toString('hex')}`;
  const log = options.log ?? createLogger(config.logLevel, { node: nodeId });
  const metrics = new Metrics({ node: nodeId }, { eventLoopResolutionMs: config.eventLoopResolutionMs });
  const opened =
    options.engines ??
    (isClustered(config)
      ? // Imported only in cluster mode: an embedded node never loads the NATS, Redis and PostgreSQL clients.
        await (
          await import('../engines/cluster.js')
        ).openClusterEngines(config, nodeId, (ref, from, to, restored) => {
          metrics.sequenceFences.inc();
          log.warn({ tenant: ref.tenant, room: ref.room, from, to, restored }, 'room sequence was behind the durable log (redis failover?); moved past it');
        })
      : await openEmbeddedEngines({
          dataDir: config.dataDir,
          store: config.embeddedStore,
          onNotice: (message, details) => log.warn(details, message),
          presenceTtlMs: config.presenceTtlMs,
          recoveryWindow: config.recoveryWindow,
          recoveryWindowMs: config.recoveryWindowMs,
          idempotencyMs: config.idempotencyMs,
        }));
  // Webhooks (docs/hooks.md): with any configured, presence changes are reported to the webhook producer.
  const webhooks = await openNodeWebhooks(config, nodeId, opened.presence, metrics, log);
  // Every backplane publish is timed (broker latency); the engines are otherwise as opened.
  const engines: Engines = {
    ...opened,
    presence: webhooks.presence,
    backplane: new TimedBackplane(opened.backplane, (s) => metrics.brokerLatency.observe(s)),
  };
  const onBackplaneError = (err: unknown): void => {
    metrics.backplaneErrors.inc();
    log.error({ err }, 'backplane error');
  };
  const outbox = new Outbox(
    config.maxBufferedBytes,
    (writes, bytes) => {
      metrics.socketWrites.inc(writes);
      metrics.socketBytes.inc(bytes);
    },
    { bytes: config.slowConsumerBytes, graceMs: config.slowConsumerMs },
    new FrameBatcher((frames) => {
      metrics.batchFrames.inc();
      metrics.batchedFrames.inc(frames);
    }),
  );
  const holes = nodeHoleFilling({ store: engines.store, durableLog: engines.durableLog, publishTimeoutMs: config.publishTimeoutMs, metrics, log });
  const policies = new RoomPolicies(config.roomPolicies);
  const rooms = new RoomRegistry(
    engines.backplane,
    engines.roomLog,
    {
      // Gap repair: the RoomLog window first; what it no longer holds (trimmed under load) from history,
      // and what the store lacks yet (a killed writer's batch) from the durable log, as history reads do.
      fetchRange: async (ref, from, to) => {
        const fromWindow = await engines.roomLog.range(ref, from, to);
        if (fromWindow.length > 0 && fromWindow[0]!.seq === from) return fromWindow;
        const hi = Math.min(to, from + 999);
        const page = await engines.store.page(ref, { after: from - 1, limit: hi - from + 1 });
        const have = new Map<number, RoomMessage>();
        for (const m of [...page.messages, ...fromWindow]) have.set(m.seq, m);
        await fillHoles(holes, ref, have, from, hi);
        return [...have.values()].sort((a, b) => a.seq - b.seq);
      },
      onDelivered: (m, members) => {
        metrics.delivered.inc(members);
        metrics.fanoutLatency.observe(Math.max(0, Date.now() - m.ts) / 1000);
        stats.delivered(m, members);
      },
      onGap: (result, err) => {
        metrics.gapFetches.inc({ result });
        if (err !== undefined) log.warn({ err }, 'gap repair fetch failed; retrying');
      },
      onBehind: (policy, missed, sent) => {
        if (missed === undefined) {
          metrics.membersBehind.inc({ policy });
          return;
        }
        metrics.catchups.inc({ policy });
        metrics.caughtUpMessages.inc({ policy, result: 'missed' }, missed);
        metrics.caughtUpMessages.inc({ policy, result: 'sent' }, sent ?? 0);
      },
    },
    { gapWaitMs: GAP_WAIT_MS, presenceDiffMs: config.presenceDiffMs, gapGiveUpMs: config.publishTimeoutMs + 5_000, policies },
    onBackplaneError,
  );
  const nodeServices = await openNodeServices(config, nodeId);
  // With --region: rooms homed in another region are published there (docs/scaling.md "Regions").
  const regions = await openNodeRegions(config, nodeId, metrics);
  const publisher = new Publisher(engines.roomLog, engines.durableLog, engines.backplane, onBackplaneError, config.publishTimeoutMs, regions.forwarder);
  // The one request edge behind the WebSocket frames, the HTTP API and the NATS API.
  const edge = new Edge({ publisher, roomLog: engines.roomLog, holes, presence: engines.presence, policies, metrics, log });
  const ctx: GatewayDeps = {
    nodeId,
    config,
    engines,
    metrics,
    log,
    auth: new Authenticator(config),
    outbox,
    rooms,
    users: new UserRouter(engines.backplane, onBackplaneError),
    edge,
    holes,
    services: nodeServices.services,
    hooks: createHooks(
      config.hooks,
      { http: fetchTransport, ...(nodeServices.request !== undefined ? { nats: nodeServices.request } : {}) },
      (hook, result, seconds) => {
        metrics.hookRequests.inc({ hook, result });
        metrics.hookSeconds.observe({ hook }, seconds);
      },
    ),
    ...(webhooks.sink !== undefined ? { webhooks: webhooks.sink } : {}),
  };
  await nodeServices.serveApi(edge, log);
  await regions.serve(publisher, (err) => log.error({ err }, 'forwarded publish failed'));
  const admission = new Admission({
    ratePerSec: config.admissionRate,
    burst: config.admissionBurst,
    maxConnections: config.maxConnections,
    retryAfterMinS: config.retryAfterMinS,
    retryAfterMaxS: config.retryAfterMaxS,
  });
  let pusher: PusherGateway | null = null;
  const openConnections = (): number => gateway.conns.size + (pusher?.conns.size ?? 0);
  const gateway = new Gateway(ctx, admission, openConnections);
  // Pusher Channels protocol 7 beside v1, on the same port, rooms and engines (docs/pusher.md).
  pusher =
    config.pusherApps.length > 0
      ? new PusherGateway({
          nodeId,
          config,
          engines,
          holes,
          metrics,
          log,
          outbox,
          rooms,
          users: ctx.users,
          edge,
          admission,
          openConnections,
          ...(webhooks.sink !== undefined ? { webhooks: webhooks.sink } : {}),
        })
      : null;
  const pusherApi = pusher !== null ? new PusherApi({ config, edge, engines, log }) : null;
  const stats = new NodeStats(nodeId, metrics, rooms, config.maxConnections, opened.backplane.kind);
  const directory = new NodeDirectory<NodeInfo>(engines.backplane, nodeId, {
    intervalMs: ANNOUNCE_INTERVAL_MS,
    snapshot: () => stats.snapshot(),
    onError: (err) => {
      metrics.backplaneErrors.inc();
      log.warn({ err }, 'node announcement failed');
    },
  });
  let directoryStopped = false;
  // A backplane that is down at start must not stop the node: announcing starts when subscribing works.
  const startDirectory = (): void => {
    if (directoryStopped) return;
    directory.start().catch((err: unknown) => {
      log.warn({ err }, 'node announcements not started; retrying');
      setTimeout(startDirectory, ANNOUNCE_INTERVAL_MS).unref();
    });
  };
  startDirectory();
  // The in-process durable log acks only once this node's writer committed: its writer always runs.
  const inProcessLog = engines.durableLog.kind === 'memory';
  const writer = new HistoryWriter(engines.durableLog, engines.store, {
    // Group commit: a batch is whatever arrived while the previous one was being written; an idle node
    // writes (and acks) a lone message at once instead of waiting for a batch to fill.
    maxWaitMs: 0,
    maxBatch: config.historyBatch,
    // A database back from an outage is written to within 5 s.
    maxRetryMs: 5_000,
    onWritten: (n) => metrics.historyWritten.inc(n),
    onFailure: (err, size) => {
      metrics.historyFailures.inc();
      log.warn({ err, batch: size }, 'history batch write failed; retrying');
    },
  });
  if (config.historyWriter || inProcessLog) writer.start();
  const lagTimer = setInterval(() => {
    const lag = engines.durableLog.lag();
    metrics.historyLagMessages.set(lag.messages);
    metrics.historyLagSeconds.set(lag.oldestMs / 1000);
    metrics.rooms.set(rooms.size);
    metrics.clusterNodes.set(directory.nodes().length);
  }, 1000);
  lagTimer.unref();

  const readiness = (): Readiness => {
    const checks = {
      backplane: engines.backplane.health(),
      durableLog: engines.durableLog.health(),
      // Every publish takes its seq from the RoomLog and every connect registers presence (Redis in a cluster).
      roomLog: engines.roomLog.health(),
      presence: engines.presence.health(),
      history: engines.store.health(),
      accepting: admission.draining ? { ok: false, detail: 'draining' } : { ok: true },
    };
    // History being degraded does not stop live traffic: the node stays ready, /readyz shows the detail.
    const ready = checks.backplane.ok && checks.durableLog.ok && checks.roomLog.ok && checks.presence.ok && checks.accepting.ok;
    return { ready, checks };
  };

  const server = createHttpServer({
    nodeId,
    config,
    metrics,
    log,
    edge,
    readiness,
    isDraining: () => admission.draining,
    revocations: engines.revocations,
    upgrade: (req, socket, head) => {
      if (pusher !== null && req.url?.startsWith('/app/') === true) pusher.handleUpgrade(req, socket, head);
      else gateway.handleUpgrade(req, socket, head);
    },
    routes: pusherApi !== null ? [(req, res, path, query) => pusherApi.handle(req, res, path, query)] : [],
    cluster: { nodeId, announceIntervalMs: ANNOUNCE_INTERVAL_MS, nodes: () => directory.nodes() },
  });
  const listener = watchListener(server);
  server.listen(config.port, config.host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // The listener stays open through the drain: upgrades get 503 refused_draining, /readyz 503, the API answers.
      const [drained, pusherDrained] = await Promise.all([gateway.drain(), pusher?.drain()]);
      log.info(pusherDrained !== undefined ? { ...drained, pusher: pusherDrained } : drained, 'drained');
      gateway.close();
      pusher?.close();
      clearInterval(lagTimer);
      await listener.close();
      await engines.presence.removeNode(nodeId).catch(() => undefined);
      // After the drain's leaves were settled here or scheduled for any node; held events go back to the queue.
      await webhooks.close();
      directoryStopped = true;
      await directory.stop();
      await rooms.close();
      await ctx.users.close();
      await nodeServices.close();
      await regions.close();
      // Let the history writer commit what is queued (bounded), so in-flight publishes still get acked.
      const deadline = Date.now() + config.drainTimeoutMs;
      while (inProcessLog && engines.durableLog.lag().messages > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await writer.stop();
      await engines.durableLog.close();
      await Promise.allSettled([
        engines.backplane.close(),
        engines.presence.close(),
        engines.roomLog.close(),
        engines.store.close(),
        engines.revocations.close(),
      ]);
    })();
    return stopping;
  };

  return { nodeId, port, server, gateway, ctx, readiness, stop };
}
