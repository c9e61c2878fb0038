/** Runs every engine conformance suite against the in-process (embedded) implementations. */
import { MemoryBackplane, MemoryBus } from '../../src/engines/backplane/memory.js';
import { MemoryDurableLog } from '../../src/engines/durablelog/memory.js';
import { MemoryPresenceStore } from '../../src/engines/presence/memory.js';
import { MemoryRevocationStore } from '../../src/engines/revocations/memory.js';
import { MemoryRoomLog } from '../../src/engines/roomlog/memory.js';
import { backplaneConformance } from './backplane.suite.js';
import { durableLogConformance } from './durablelog.suite.js';
import { presenceConformance, type PresenceFactory } from './presence.suite.js';
import { presenceSettleConformance } from './presence-settle.suite.js';
import { revocationConformance } from './revocations.suite.js';
import { roomLogConformance } from './roomlog.suite.js';
import { MemoryWebhookQueue } from '../../src/engines/webhookqueue/memory.js';
import { webhookQueueConformance } from './webhookqueue.suite.js';

backplaneConformance('memory', async () => {
  const bus = new MemoryBus();
  const nodes: MemoryBackplane[] = [];
  return {
    nodes: async (n) => {
      const created = Array.from({ length: n }, () => new MemoryBackplane(bus));
      nodes.push(...created);
      return created;
    },
    outage: {
      begin: async () => bus.fail('memory bus stopped by the test'),
      end: async () => bus.recover(),
    },
    cleanup: async () => {
      await Promise.all(nodes.map((node) => node.close()));
    },
  };
});

const memoryPresence: PresenceFactory = async (options) => {
  const store = new MemoryPresenceStore(options);
  return {
    stores: async (n) => Array.from({ length: n }, () => store),
    cleanup: () => store.close(),
  };
};
presenceConformance('memory', memoryPresence);
presenceSettleConformance('memory', memoryPresence);

roomLogConformance('memory', async (options) => {
  const log = new MemoryRoomLog(options);
  return {
    logs: async (n) => Array.from({ length: n }, () => log),
    cleanup: () => log.close(),
  };
});

durableLogConformance('memory', async () => {
  const log = new MemoryDurableLog();
  return { log, ackMeansCommitted: true, cleanup: () => log.close() };
});

revocationConformance('memory', async () => {
  const store = new MemoryRevocationStore();
  return { stores: async (n) => Array.from({ length: n }, () => store), cleanup: () => store.close() };
});

webhookQueueConformance('memory', async () => {
  const q = new MemoryWebhookQueue();
  return { queues: async (n) => Array.from({ length: n }, () => q), redeliverMs: 0, cleanup: () => q.close() };
});
