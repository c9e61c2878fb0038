/**
 * A node's webhooks (docs/hooks.md), assembled from the configuration: nothing at all when no webhook is configured
 * (the presence store is used as it is); else the work queue (JetStream with --nats, in-process otherwise), the
 * producer around the presence store, and the sender.
 */
import type { Config } from '../config/schema.js';
import type { PresenceStore } from '../engines/presence/presence.js';
import { MemoryWebhookQueue } from '../engines/webhookqueue/memory.js';
import type { WebhookQueue } from '../engines/webhookqueue/queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HookedPresence } from '../webhooks/hooked-presence.js';
import { WebhookProducer, type ClientEventSink } from '../webhooks/producer.js';
import { WebhookSender } from '../webhooks/sender.js';
import { WebhookTargets } from '../webhooks/targets.js';

export interface NodeWebhooks {
  /** The presence store the node uses: the given one, or it wrapped to report presence changes. */
  readonly presence: PresenceStore;
  readonly sink?: ClientEventSink;
  readonly queue?: WebhookQueue;
  /** Stops settling and sending (held events go back to the queue) and closes the queue. */
  close(): Promise<void>;
}

export async function openNodeWebhooks(config: Config, nodeId: string, presence: PresenceStore, metrics: Metrics, log: Logger): Promise<NodeWebhooks> {
  const targets = new WebhookTargets(config, config.webhookGraceMs);
  if (!targets.enabled) return { presence, close: async () => undefined };
  const queue: WebhookQueue =
    config.nats !== undefined && config.durableLog !== 'memory'
      ? // Imported only in cluster mode, like the cluster engines (node.ts): an embedded node never loads the NATS client.
        await (await import('../engines/cluster.js')).openClusterWebhookQueue(config, `switchboard ${nodeId} webhooks`)
      : new MemoryWebhookQueue();
  const producer = new WebhookProducer({
    targets,
    queue,
    presence,
    metrics,
    log,
    ttlMs: config.presenceTtlMs,
    settleIntervalMs: Math.min(1_000, Math.max(50, Math.floor(config.webhookGraceMs / 4))),
  });
  const sender = new WebhookSender({
    nodeId,
    queue,
    targets,
    metrics,
    log,
    options: {
      batchSize: config.webhookBatchSize,
      batchMs: config.webhookBatchMs,
      timeoutMs: config.webhookTimeoutMs,
      retryDeadlineMs: config.webhookRetryDeadlineMs,
      concurrency: config.webhookConcurrency,
    },
  });
  producer.start();
  sender.start();
  return {
    presence: new HookedPresence(presence, producer),
    sink: producer,
    queue,
    close: async () => {
      producer.stop();
      await sender.stop();
      await queue.close();
    },
  };
}
