/**
 * `switchboard history-writer`: the history writer as its own process (JetStream durable consumer →
 * PostgreSQL), for deployments that run it apart from the gateways (start the gateways with
 * `--history-writer false`). Several may run: they share the durable consumer, each message goes to one.
 * It takes the same configuration as `start` (needs `nats` and `database`), serves `/metrics`, `/healthz`
 * and `/readyz` on `port`, starts while PostgreSQL is down (retrying), and on SIGTERM/SIGINT finishes
 * its in-flight batch and exits 0.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.js';
import { openClusterDurableLog, openDeferredPostgres } from '../engines/cluster.js';
import { HistoryWriter } from '../engines/messagestore/history-writer.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';

export async function runHistoryWriter(config: Config, log: Logger): Promise<void> {
  if (config.nats === undefined || config.database === undefined) throw new Error('history-writer needs --nats (JetStream) and --database');
  const id = config.nodeId ?? 'history-writer';
  const metrics = new Metrics({ node: id });
  const durableLog = await openClusterDurableLog(config, `switchboard ${id}`);
  const store = openDeferredPostgres(config, (err, attempt) =>
    log.warn({ err: { message: (err as Error).message }, attempt }, 'postgresql unreachable; retrying'),
  );
  const writer = new HistoryWriter(durableLog, store, {
    maxBatch: config.historyBatch,
    maxWaitMs: 20,
    maxRetryMs: 5_000,
    onWritten: (n) => metrics.historyWritten.inc(n),
    onFailure: (err, size) => {
      metrics.historyFailures.inc();
      log.warn({ err: { message: (err as Error).message }, batch: size }, 'history batch write failed; retrying');
    },
  });
  writer.start();
  const lagTimer = setInterval(() => {
    const lag = durableLog.lag();
    metrics.historyLagMessages.set(lag.messages);
    metrics.historyLagSeconds.set(lag.oldestMs / 1000);
  }, 1000);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      void metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      });
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const checks = { durableLog: durableLog.health(), history: store.health() };
      const ok = path === '/healthz' || (checks.durableLog.ok && checks.history.ok);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'degraded', checks, stats: writer.stats() }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: 'only /metrics, /healthz, /readyz' } }));
  });
  server.listen(config.port, config.host);
  await new Promise<void>((resolve) => server.once('listening', resolve));
  log.info({ port: (server.address() as AddressInfo).port, role: 'history-writer' }, 'listening');
  const shutdown = (signal: string): void => {
    log.info({ signal }, 'stopping history writer after its in-flight batch');
    clearInterval(lagTimer);
    server.close();
    void (async () => {
      await writer.stop();
      await durableLog.close();
      await store.close();
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
