/** The WebhookQueue conformance suite against JetStream (a throwaway `nats-server -js`), a stream per test. */
import { afterAll, beforeAll } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { openNats } from '../../src/connections/nats.js';
import { openJetStreamWebhookQueue, type JetStreamWebhookQueue } from '../../src/engines/webhookqueue/jetstream.js';
import { startNatsServer, type TestServer } from '../helpers/servers.js';
import { webhookQueueConformance } from './webhookqueue.suite.js';

let nats: TestServer | undefined;
let n = 0;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
}, 60_000);

afterAll(async () => {
  await nats?.dispose();
});

webhookQueueConformance('jetstream', async () => {
  n += 1;
  const stream = `H${n}`;
  const conns: NatsConnection[] = [];
  const queues: JetStreamWebhookQueue[] = [];
  return {
    redeliverMs: 1_000,
    queues: async (count) => {
      for (let i = 0; i < count; i++) {
        const nc = await openNats({ url: nats!.url });
        conns.push(nc);
        queues.push(await openJetStreamWebhookQueue(nc, { stream, subjectPrefix: `h${n}`, consumer: 'c', ackWaitMs: 1_000 }));
      }
      return queues.slice(-count);
    },
    cleanup: async () => {
      await Promise.all(queues.map((q) => q.close()));
      if (conns[0] !== undefined) await (await jetstreamManager(conns[0])).streams.delete(stream).catch(() => undefined);
      await Promise.all(conns.map((c) => c.close()));
    },
  };
});
