#!/usr/bin/env node
/**
 * One backend-service instance for the bench's `services` scenario: `node service-instance.mjs <name>
 * <natsUrl> <durable 0|1>` attaches to the cluster with the backend SDK (dist/backend), handles `create`
 * by counting and `echo` by answering its data, prints `ready`, then answers every line on stdin with its
 * handled count.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [name, natsUrl, durable] = process.argv.slice(2);
const { service } = await import(join(ROOT, 'dist', 'backend', 'index.js'));
let handled = 0;
const svc = await service(name, { nats: natsUrl, durable: durable === '1', concurrency: 256, onError: (e) => process.stderr.write(`${e}\n`) });
svc.handle('create', () => {
  handled++;
});
svc.handle('echo', (msg) => msg.data);
await svc.ready();
process.stdout.write('ready\n');
process.stdin.on('data', () => process.stdout.write(`${handled}\n`));
