// A backend service on the Switchboard backend SDK: `orders`, durable, with a send handler and an RPC.
//
//   nats-server -js &                                   # NATS with JetStream on :4222
//   redis-server &  (and a PostgreSQL)                  # the rest of a cluster node's engines
//   node dist/cli/main.js start --dev --nats nats://127.0.0.1:4222 --redis redis://127.0.0.1:6379 \
//        --database postgres://postgres@127.0.0.1:5432/postgres --durable-services orders
//   node examples/backend-service.mjs [nats://127.0.0.1:4222]     # start as many as you like
//
// Then from a client (dev mode allows every topic):
//   {"type":"send","id":1,"topic":"orders.create","data":{"sku":"A-1","qty":2},"idem":"o-1"}
//   {"type":"rpc","id":2,"topic":"orders.quote","data":{"sku":"A-1","qty":2}}
// Each send is handled by exactly one running instance; every room member of `orders-feed` sees the order.
// In this repository `@switchboard/backend` is the workspace package packages/backend (built by `npm run build`);
// in a service: `npm install @switchboard/backend`.
import { service } from '@switchboard/backend';

const nats = process.argv[2] ?? 'nats://127.0.0.1:4222';
const prices = { 'A-1': 1250, 'B-2': 399 };
const seen = new Set(); // demo dedupe; a real service keeps (tenant, user, idem) in its database

const orders = await service('orders', { nats, durable: true, maxDeliver: 5, ackWaitMs: 30_000 });

orders.handle('create', async (msg) => {
  const key = `${msg.tenant}/${msg.user}/${msg.idem}`;
  if (seen.has(key)) return; // a redelivery of a message already handled
  const { sku, qty } = msg.data;
  if (!(sku in prices)) throw new Error(`unknown sku ${sku}`); // redelivered, then dead-lettered
  seen.add(key);
  console.log(`order from ${msg.user} (node ${msg.node}, delivery ${msg.deliveries}): ${qty} × ${sku}`);
  // Straight to the room over NATS: sequenced, stored and fanned out like POST /api/publish.
  await orders.publishToRoom('orders-feed', { user: msg.user, sku, qty }, { tenant: msg.tenant, from: 'orders', idem: `order-${key}` });
  await orders.publishToUser(msg.user, { orderAccepted: msg.idem }, { tenant: msg.tenant, from: 'orders' });
});

orders.handle('quote', (msg) => {
  const { sku, qty } = msg.data;
  if (!(sku in prices)) throw new Error(`unknown sku ${sku}`); // the client gets service_error
  return { sku, qty, total: prices[sku] * qty };
});

await orders.ready();
console.log(`orders service ready on ${nats}`);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => void orders.close().then(() => process.exit(0)));
