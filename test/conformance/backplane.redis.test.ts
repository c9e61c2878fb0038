/**
 * The Backplane conformance suite against RedisBackplane: every test gets its own throwaway redis-server,
 * and each "node" is a separate pair of connections (publisher + subscriber) to it. The outage hook stops
 * the server and starts it again on the same port, so the suite sees publish reject and health turn bad,
 * then the clients reconnect and the subscriptions come back.
 */
import { openRedisBackplane, type RedisBackplane } from '../../src/engines/backplane/redis.js';
import { startRedisServer } from '../helpers/servers.js';
import { backplaneConformance } from './backplane.suite.js';

backplaneConformance('redis', async () => {
  const server = await startRedisServer();
  const nodes: RedisBackplane[] = [];
  return {
    nodes: async (n) => {
      const created = await Promise.all(Array.from({ length: n }, () => openRedisBackplane({ url: server.url })));
      nodes.push(...created);
      return created;
    },
    outage: {
      begin: () => server.stop(),
      end: () => server.restart(),
    },
    cleanup: async () => {
      await Promise.allSettled(nodes.map((node) => node.close()));
      await server.dispose();
    },
  };
});
