#!/usr/bin/env node
/**
 * `switchboard start [flags]`: runs one node. Every flag has an env var (SWITCHBOARD_<NAME>) and a
 * config-file key; see docs/operations.md. SIGTERM/SIGINT drain the node and exit 0.
 */
import { Command, Option } from 'commander';
import { CONFIG_KEYS, ConfigError, envName, kebab, loadConfig, redactConfig } from '../config/load.js';
import { startNode } from '../gateway/node.js';
import { createLogger } from '../observability/logger.js';

const HELP: Partial<Record<string, string>> = {
  port: 'HTTP/WebSocket port (default 8080; 0 picks a free port)',
  host: 'listen address (default 0.0.0.0)',
  nodeId: 'node id (default random)',
  dataDir: 'embedded storage directory (default ./data)',
  dev: 'development mode: anonymous users, one tenant, HTTP API open without --api-key',
  nats: 'NATS URL(s) for the cluster backplane',
  redis: 'Redis URL for presence and sequencing',
  database: 'PostgreSQL URL for permanent history',
  jwtSecret: 'HMAC secret (HS256/384/512) for client tokens',
  jwtPublicKey: 'PEM (SPKI) public key for client tokens: RSA → RS256, EC P-256/384/521 → ES256/384/512, Ed25519 → EdDSA',
  jwksUrl: 'JWKS URL for client tokens',
  apiKey: 'API key for the HTTP server API',
};

const BOOLEAN_KEYS = new Set(['dev']);

const program = new Command('switchboard').description('Switchboard real-time messaging gateway');
const start = program.command('start').description('run a gateway node').option('--config <file>', 'JSON config file');
for (const key of CONFIG_KEYS) {
  const flag = BOOLEAN_KEYS.has(key) ? `--${kebab(key)}` : `--${kebab(key)} <value>`;
  start.addOption(new Option(flag, `${HELP[key] ?? key} [env ${envName(key)}]`));
}

start.action(async (opts: Record<string, unknown>) => {
  let config;
  try {
    config = loadConfig(opts, process.env, opts.config as string | undefined);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { node: config.nodeId ?? 'starting' });
  log.info({ config: redactConfig(config) }, 'configuration');
  if (config.nats !== undefined || config.redis !== undefined || config.database !== undefined) {
    log.error('cluster engines (--nats, --redis, --database) are not available in this version yet');
    process.exit(2);
  }
  const node = await startNode(config);
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

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`switchboard: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
