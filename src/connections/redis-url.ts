/**
 * Redis addresses beyond `redis://` and `rediss://` (which ioredis reads itself): the Sentinel address
 * `redis+sentinel://[user:password@]host:port,host:port/master-name[?db=N&sentinelPassword=…]` and the Cluster
 * address `redis+cluster://[user:password@]host:port,host:port`, and a printable form of any of them without
 * the password.
 */
export const SENTINEL_SCHEME = 'redis+sentinel://';
export const CLUSTER_SCHEME = 'redis+cluster://';

export interface SentinelAddress {
  sentinels: { host: string; port: number }[];
  /** The master's name in the sentinels' configuration (`sentinel monitor <name> …`). */
  name: string;
  username?: string;
  /** Password of the Redis master and replicas. */
  password?: string;
  /** Password of the sentinels themselves (`requirepass` in sentinel.conf), when set. */
  sentinelPassword?: string;
  db?: number;
}

/** Parses `redis+sentinel://[user:password@]host:port[,host:port…]/master-name[?db=N&sentinelPassword=…]`; throws on anything else. */
export function parseSentinelUrl(url: string): SentinelAddress {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?@]+)\/([^/?]+)\/?(?:\?(.*))?$/.exec(url);
  if (m === null) throw new Error('expected redis+sentinel://[:password@]host:port,host:port/master-name');
  const [, user, pass, hosts, name, query] = m;
  const sentinels = hostList(hosts!, 26379);
  const params = new URLSearchParams(query ?? '');
  const address: SentinelAddress = { sentinels, name: decodeURIComponent(name!) };
  if (user !== undefined && user !== '') address.username = decodeURIComponent(user);
  if (pass !== undefined && pass !== '') address.password = decodeURIComponent(pass);
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelPassword !== null && sentinelPassword !== '') address.sentinelPassword = sentinelPassword;
  const db = params.get('db');
  if (db !== null) {
    if (!/^\d+$/.test(db)) throw new Error(`bad db "${db}"`);
    address.db = Number(db);
  }
  for (const key of params.keys()) if (key !== 'db' && key !== 'sentinelPassword') throw new Error(`unknown parameter "${key}" (db, sentinelPassword)`);
  return address;
}

export interface ClusterAddress {
  /** Startup nodes: any masters or replicas of the cluster; the client learns the rest from them. */
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
}

/** Parses `redis+cluster://[user:password@]host:port[,host:port…]`; throws on anything else. */
export function parseClusterUrl(url: string): ClusterAddress {
  const m = /^redis\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?@]+)\/?$/.exec(url);
  if (m === null) throw new Error('expected redis+cluster://[:password@]host:port,host:port (no database: a cluster has only db 0)');
  const [, user, pass, hosts] = m;
  const address: ClusterAddress = { nodes: hostList(hosts!, 6379) };
  if (user !== undefined && user !== '') address.username = decodeURIComponent(user);
  if (pass !== undefined && pass !== '') address.password = decodeURIComponent(pass);
  return address;
}

function hostList(hosts: string, defaultPort: number): { host: string; port: number }[] {
  return hosts.split(',').map((h) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(h.trim());
    if (hp === null) throw new Error(`bad address "${h}" (host:port)`);
    return { host: hp[1]!.replace(/^\[|\]$/g, ''), port: hp[2] !== undefined ? Number(hp[2]) : defaultPort };
  });
}

/** The address without credentials, for messages: `redis://host:port`, `redis+sentinel://h:p,h:p/name`, `redis+cluster://h:p,h:p`. */
export function redactRedisAddress(url: string): string {
  for (const scheme of [SENTINEL_SCHEME, CLUSTER_SCHEME]) {
    if (!url.startsWith(scheme)) continue;
    const m = /^[a-z+]+:\/\/(?:[^@/]*@)?([^/?@]+)(\/[^/?]*)?/.exec(url);
    return m === null ? '[unparsable URL]' : `${scheme}${m[1]!}${m[2] ?? ''}`;
  }
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparsable URL]';
  }
}
