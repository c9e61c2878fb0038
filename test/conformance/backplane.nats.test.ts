/**
 * The Backplane conformance suite against NatsBackplane: every test gets its own throwaway nats-server,
 * and each "node" is a separate connection to it. The outage hook stops the server and starts it again on
 * the same port, so the suite sees publish reject and health turn bad, then the client reconnect and
 * resubscribe by itself.
 */
import { openNatsBackplane, type NatsBackplane } from '../../src/engines/backplane/nats.js';
import { startNatsServer } from '../helpers/servers.js';
import { backplaneConformance } from './backplane.suite.js';

backplaneConformance('nats', async () => {
  const server = await startNatsServer();
  const nodes: NatsBackplane[] = [];
  return {
    nodes: async (n) => {
      const created = await Promise.all(
        Array.from({ length: n }, (_, i) => openNatsBackplane({ url: server.url, name: `conformance node ${nodes.length + i}` })),
      );
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
