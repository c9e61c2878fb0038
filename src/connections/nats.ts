/**
 * One place that turns configuration into a NATS connection (@nats-io/transport-node v3). The URL may
 * list several servers of a NATS cluster, comma-separated; user/password or a token may be given in the
 * URL or as options; a creds file and TLS files pass through. The client reconnects forever with jitter
 * and resubscribes by itself; `status` events are forwarded for health and logs.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { ConnectionError } from './errors.js';

export interface NatsConnectOptions {
  /** One or more servers, comma-separated: nats://user:pass@host:4222,nats://host2:4222 */
  url: string;
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Give up connecting at start-up after this long (ms); reconnects after that are unbounded. */
  connectTimeoutMs?: number;
}

export async function openNats(o: NatsConnectOptions): Promise<NatsConnection> {
  const servers: string[] = [];
  let user = o.user;
  let pass = o.pass;
  let token = o.token;
  for (const raw of o.url
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const u = new URL(raw.includes('://') ? raw : `nats://${raw}`);
    if (u.username !== '' && u.password !== '') {
      user ??= decodeURIComponent(u.username);
      pass ??= decodeURIComponent(u.password);
    } else if (u.username !== '') {
      token ??= decodeURIComponent(u.username);
    }
    servers.push(`${u.protocol === 'tls:' ? 'tls' : 'nats'}://${u.hostname}:${u.port || '4222'}`);
  }
  if (servers.length === 0) throw new ConnectionError('nats', 'invalid', 'nats: no server in URL');
  const opts: NodeConnectionOptions = {
    servers,
    name: o.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    timeout: o.connectTimeoutMs ?? 5_000,
    pingInterval: 10_000,
    maxPingOut: 3,
  };
  if (user !== undefined) Object.assign(opts, { user, pass });
  if (token !== undefined) Object.assign(opts, { token });
  if (o.credsFile !== undefined) opts.authenticator = credsAuthenticator(readFileSync(o.credsFile));
  if (o.tls !== undefined) opts.tls = { caFile: o.tls.caFile, certFile: o.tls.certFile, keyFile: o.tls.keyFile };
  return connect(opts);
}
