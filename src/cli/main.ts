#!/usr/bin/env node
/**
 * `switchboard start [flags]`: runs one node. Every flag has an env var (SWITCHBOARD_<NAME>) and a
 * config-file key; see docs/operations.md. SIGTERM/SIGINT drain the node and exit 0.
 */
import { Command, Option } from 'commander';
import type { Config } from '../config/schema.js';
import { CONFIG_KEYS, ConfigError, envName, kebab, loadConfig, redactConfig } from '../config/load.js';
import { randomBytes } from 'node:crypto';
import { startNode } from '../node/node.js';
import { runClusterCommand } from './cluster-command.js';
import { isPrimary, runPrimary, workerCount } from './workers.js';
import { createLogger } from '../observability/logger.js';

const HELP: Partial<Record<string, string>> = {
  port: 'HTTP/WebSocket port (default 8080; 0 picks a free port)',
  host: 'listen address (default 0.0.0.0)',
  nodeId: 'node id (default random)',
  dataDir: 'embedded storage directory (default ./data)',
  dev: 'development mode: anonymous users, one tenant, HTTP API open without --api-key',
  nats: 'NATS URL(s), comma-separated, for the cluster backplane (user:pass@ or token@ in the URL)',
  redis: 'Redis URL for presence and sequencing (redis://:password@host:6379/0, rediss:// for TLS)',
  database: 'PostgreSQL URL for permanent history',
  backplane: 'node-to-node pub/sub: nats (default) or redis',
  workers: 'gateway processes on this port: a number or auto (one per core); needs --nats',
  jwtSecret: 'HMAC secret (HS256/384/512) for client tokens',
  jwtPublicKey: 'PEM (SPKI) public key for client tokens: RSA → RS256, EC P-256/384/521 → ES256/384/512, Ed25519 → EdDSA',
  jwksUrl: 'JWKS URL for client tokens',
  apiKey: 'API key for the HTTP server API',
};

const BOOLEAN_KEYS = new Set(['dev']);
Object.assign(HELP, {
  durableLog: 'cluster durable log: jetstream (default with --nats) or memory (acks wait for PostgreSQL)',
  jetstreamReplicas: 'JetStream durable log: stream replicas (default 1; 3 in production, see docs/scaling.md)',
  jetstreamMaxAgeMs: 'JetStream durable log: keep messages this long, ms (default 7 days)',
  jetstreamMaxBytes: 'JetStream durable log: keep at most this many bytes (default 10 GiB)',
  jetstreamAckWaitMs: 'JetStream durable log: redeliver a message a killed history writer held after this long, ms (default 5000)',
  historyWriter: 'run the history writer (durable log → PostgreSQL) in this node: true (default) or false',
  historyBatch: 'most messages per history insert batch (default 5000)',
  embeddedStore: 'embedded history store: sqlite (default, <data-dir>/history.sqlite) or pglite (<data-dir>/history/)',
  eventLoopResolutionMs: 'event-loop delay monitor resolution behind switchboard_nodejs_eventloop_lag_*, ms (default 10)',
  compression: 'permessage-deflate on /ws, room messages compressed once for every member that took it: true (default) or false',
  compressionThresholdBytes: 'room messages whose JSON has at least this many bytes are compressed (default 1024)',
});

const program = new Command('switchboard').description('Switchboard real-time messaging gateway');

/** A command taking every configuration option as a flag (plus --config). */
function configCommand(name: string, description: string): Command {
  const command = program.command(name).description(description).option('--config <file>', 'JSON config file');
  for (const key of CONFIG_KEYS) {
    const flag = BOOLEAN_KEYS.has(key) ? `--${kebab(key)}` : `--${kebab(key)} <value>`;
    command.addOption(new Option(flag, `${HELP[key] ?? key} [env ${envName(key)}]`));
  }
  return command;
}

/** The validated configuration, or exit 2 with the reasons. */
function configOrExit(opts: Record<string, unknown>): Config {
  try {
    return loadConfig(opts, process.env, opts.config as string | undefined);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

const start = configCommand('start', 'run a gateway node');
start.action(async (opts: Record<string, unknown>) => {
  let config = configOrExit(opts);
  const log = createLogger(config.logLevel, { node: config.nodeId ?? 'starting' });
  log.info({ config: redactConfig(config) }, 'configuration');
  const workers = workerCount(config.workers);
  if (workers > 1 && isPrimary()) {
    runPrimary(workers, config.nodeId ?? `n-${randomBytes(3).toString('hex')}`, log);
    return;
  }
  if (!isPrimary() && process.env.SWITCHBOARD_NODE_ID !== undefined) {
    // A worker: its node id comes from the primary, even when --node-id was given on the command line.
    config = { ...config, nodeId: process.env.SWITCHBOARD_NODE_ID };
  }
  let node;
  try {
    node = await startNode(config);
  } catch (err) {
    // A service that cannot be reached at start-up: say which and where, exit non-zero.
    log.fatal({ err: { message: (err as Error).message } }, `cannot start: ${(err as Error).message}`);
    process.exit(3);
  }
  const nodeLog = node.ctx.log;
  if (config.dev) {
    nodeLog.warn(
      config.apiKey === undefined
        ? 'DEV MODE: anonymous users, one tenant, and the HTTP API is open without an API key. Do not expose this node.'
        : 'DEV MODE: anonymous users and one tenant. Do not expose this node.',
    );
  }
  nodeLog.info({ port: node.port, url: `http://localhost:${node.port}/`, ws: `ws://localhost:${node.port}/ws` }, 'listening');
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) return;
    signalled = true;
    nodeLog.info({ signal }, 'draining');
    node.stop().then(
      () => {
        nodeLog.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        nodeLog.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
});

const historyWriter = configCommand(
  'history-writer',
  'run only the history writer (JetStream → PostgreSQL); takes the same flags as start (needs --nats and --database)',
);
historyWriter.action(async (opts: Record<string, unknown>) => {
  const config = configOrExit(opts);
  const log = createLogger(config.logLevel, { node: config.nodeId ?? 'history-writer' });
  try {
    // Imported here: `start` in embedded mode never loads the cluster engines' clients.
    const { runHistoryWriter } = await import('./history-writer.js');
    await runHistoryWriter(config, log);
  } catch (err) {
    log.fatal({ err: { message: (err as Error).message } }, `cannot start: ${(err as Error).message}`);
    process.exit(3);
  }
});

program
  .command('cluster')
  .description('run a local multi-node cluster for development (nginx in front when installed); flags after -- go to every node')
  .option('--nodes <n>', 'number of gateway nodes', '3')
  .option('--port <port>', 'port of nginx; nodes listen on port+1..port+N', '8080')
  .option('--host <host>', 'listen address', '127.0.0.1')
  .option('--nats <url>', 'NATS URL', process.env.NATS_URL ?? 'nats://127.0.0.1:4222')
  .option('--redis <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  .option('--database <url>', 'PostgreSQL URL', process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
  .argument('[startFlags...]', 'flags for every node, after --')
  .action((startFlags: string[], opts: Record<string, string>) => {
    const nodes = Number(opts.nodes);
    const port = Number(opts.port);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 64) {
      process.stderr.write('switchboard: --nodes must be 1..64\n');
      process.exit(2);
    }
    if (!Number.isInteger(port) || port < 1 || port + nodes > 65_535) {
      process.stderr.write('switchboard: --port must leave room for port+1..port+N\n');
      process.exit(2);
    }
    runClusterCommand({ nodes, port, host: opts.host!, nats: opts.nats!, redis: opts.redis!, database: opts.database!, extra: startFlags }, process.argv[1]!);
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`switchboard: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
