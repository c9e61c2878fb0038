/**
 * The regions part of a node (docs/scaling.md "Regions"), with `--region` only: the room → home region map, a
 * NATS connection of its own to the supercluster carrying publishes forwarded to other regions, and the serving
 * of this region's forwarded publishes. Without `--region` it is nothing: no connection, no forwarding, every
 * room homed here as before.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { regionList, type Config } from '../config/schema.js';
import { RegionForwarder, RegionTransportError, serveRegionPublishes, type RegionTransport } from '../messaging/region-forward.js';
import { RegionHomes } from '../messaging/region-homes.js';
import type { Publisher } from '../messaging/publisher.js';
import type { Metrics } from '../observability/metrics.js';

export interface NodeRegions {
  /** Undefined without `--region`. */
  readonly homes?: RegionHomes;
  readonly forwarder?: RegionForwarder;
  /** Starts answering publishes forwarded to this region (through `publisher`, the node's publish path). */
  serve(publisher: Publisher, onError: (err: unknown) => void): Promise<void>;
  close(): Promise<void>;
}

const NONE: NodeRegions = { serve: async () => undefined, close: async () => undefined };

export async function openNodeRegions(config: Config, nodeId: string, metrics: Pick<Metrics, 'regionForwards'>): Promise<NodeRegions> {
  if (config.region === undefined) return NONE;
  const [{ natsOptions }, { openNats }] = await Promise.all([import('../engines/cluster.js'), import('../connections/nats.js')]);
  const nc = await openNats(natsOptions(config, `switchboard ${nodeId} regions`));
  const transport = natsRegionTransport(nc);
  const homes = new RegionHomes(config.region, regionList(config), config.regionHomes);
  const forwarder = new RegionForwarder(homes, transport, config.regionTimeoutMs ?? config.publishTimeoutMs + 2_000, (home, result) =>
    metrics.regionForwards.inc({ home, result }),
  );
  let served: { close(): Promise<void> } | null = null;
  return {
    homes,
    forwarder,
    async serve(publisher, onError) {
      served = await serveRegionPublishes(homes, transport, (ref, input, except) => publisher.toRoom(ref, input, except), onError);
    },
    async close() {
      await served?.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}

/** Request/reply and queue-group serving on a NATS connection; a subscription is active once `serve` resolves (flushed). */
export function natsRegionTransport(nc: NatsConnection): RegionTransport {
  return {
    async request(subject, body, timeoutMs) {
      try {
        return (await nc.request(subject, body, { timeout: timeoutMs })).data;
      } catch (err) {
        throw new RegionTransportError(failureKind(err), `${subject}: ${(err as Error).message}`, { cause: err });
      }
    },
    async serve(subject, queue, handler) {
      const sub = nc.subscribe(subject, {
        queue,
        callback: (err, msg) => {
          if (err !== null) return;
          void handler(msg.data).then(
            (reply) => msg.respond(reply),
            () => undefined,
          );
        },
      });
      await nc.flush();
      return {
        close: async () => {
          await sub.drain().catch(() => sub.unsubscribe());
        },
      };
    },
  };
}

function failureKind(err: unknown): RegionTransportError['kind'] {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const probe = (e as Error & { isNoResponders?: () => boolean }).isNoResponders;
    if (e.name === 'NoRespondersError' || (typeof probe === 'function' && probe.call(e))) return 'no_responders';
    if (e.name === 'TimeoutError') return 'timeout';
  }
  return 'failed';
}
