/**
 * The backend-services part of a node: its own NATS connection (when --nats is given) carrying client
 * send/rpc to services and serving the SDK's publish/presence API; in embedded mode a Services that
 * answers `services_disabled`. The NATS side is imported only when --nats is given: an embedded node never
 * loads the NATS client (start-up time and memory, docs/benchmarks.md scenario `embedded`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { durableServiceList, type Config } from '../config/schema.js';
import type { BackendApi } from '../services/backend-api.js';
import type { Edge } from '../messaging/edge.js';
import type { Logger } from '../observability/logger.js';
import { Services, type ServicesOptions } from '../services/services.js';

export interface NodeServices {
  readonly services: Services;
  /** A NATS request on the services connection (hooks on the bus); undefined without --nats. */
  readonly request?: (subject: string, body: string, timeoutMs: number) => Promise<string>;
  /** Starts serving the SDK API (publish, presence) through the node's request edge. */
  serveApi(edge: Edge, log: Logger): Promise<void>;
  close(): Promise<void>;
}

export async function openNodeServices(config: Config, nodeId: string): Promise<NodeServices> {
  const o: ServicesOptions = {
    nodeId,
    durable: durableServiceList(config.durableServices),
    rpcTimeoutMs: config.rpcTimeoutMs,
    rpcMaxTimeoutMs: config.rpcMaxTimeoutMs,
    sendTimeoutMs: config.serviceSendTimeoutMs,
    queueMaxMsgs: config.serviceQueueMaxMsgs,
  };
  if (config.nats === undefined) {
    return { services: Services.disabled(o), serveApi: async () => undefined, close: async () => undefined };
  }
  const [{ natsOptions }, { openNats }, { BackendApi }] = await Promise.all([
    import('../engines/cluster.js'),
    import('../connections/nats.js'),
    import('../services/backend-api.js'),
  ]);
  const nc: NatsConnection = await openNats(natsOptions(config, `switchboard ${nodeId} services`));
  let services: Services;
  try {
    services = await Services.open(nc, o);
  } catch (err) {
    await nc.close();
    throw err;
  }
  let api: BackendApi | null = null;
  return {
    services,
    request: async (subject, body, timeoutMs) => (await nc.request(subject, body, { timeout: timeoutMs })).string(),
    async serveApi(edge, log) {
      api = new BackendApi(edge, log, nc);
      await api.start();
    },
    async close() {
      await api?.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}
