/**
 * Redis addresses: the Sentinel URL's parts (sentinels, master name, passwords, db), the refusals of what
 * cannot be used (a config error, exit 2, before any connection), and passwords redacted in the printed config.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, redactConfig } from '../../src/config/load.js';
import { ConnectionError } from '../../src/connections/errors.js';
import { hashTag } from '../../src/connections/redis-batch.js';
import { openRedis, parseClusterUrl, parseSentinelUrl } from '../../src/connections/redis.js';

describe('parseSentinelUrl', () => {
  it('reads the sentinels, the master name, the passwords and the db', () => {
    expect(parseSentinelUrl('redis+sentinel://s1:26379,s2:26380,10.0.0.3/mymaster')).toEqual({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
        { host: '10.0.0.3', port: 26379 },
      ],
      name: 'mymaster',
    });
    expect(parseSentinelUrl('redis+sentinel://:p%40ss@s1:1/m?db=3&sentinelPassword=sp')).toEqual({
      sentinels: [{ host: 's1', port: 1 }],
      name: 'm',
      password: 'p@ss',
      sentinelPassword: 'sp',
      db: 3,
    });
    expect(parseSentinelUrl('redis+sentinel://app:pw@[::1]:26379/m/')).toEqual({
      sentinels: [{ host: '::1', port: 26379 }],
      name: 'm',
      username: 'app',
      password: 'pw',
    });
  });

  it('refuses an address without a master name, a bad host list or unknown parameters', () => {
    expect(() => parseSentinelUrl('redis+sentinel://s1:26379')).toThrow(/master-name/);
    expect(() => parseSentinelUrl('redis+sentinel://s1:x/m')).toThrow(/bad address "s1:x"/);
    expect(() => parseSentinelUrl('redis+sentinel://s1:1/m?db=x')).toThrow(/bad db/);
    expect(() => parseSentinelUrl('redis+sentinel://s1:1/m?tls=1')).toThrow(/unknown parameter "tls"/);
  });

  it('makes openRedis fail with an invalid-address error before connecting', async () => {
    const err: unknown = await openRedis({ url: 'redis+sentinel://s1:1/m?bogus=1' }, 'presence').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).code).toBe('invalid');
    expect((err as ConnectionError).message).toMatch(/redis \(presence\): unusable address redis\+sentinel:\/\/s1:1\/m: unknown parameter/);
  });
});

describe('parseClusterUrl', () => {
  it('reads the startup nodes and the password; refuses a database or parameters', () => {
    expect(parseClusterUrl('redis+cluster://:p%40ss@a:7000,b,10.0.0.3:7002')).toEqual({
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 6379 },
        { host: '10.0.0.3', port: 7002 },
      ],
      password: 'p@ss',
    });
    expect(() => parseClusterUrl('redis+cluster://a:7000/0')).toThrow(/no database/);
    expect(() => parseClusterUrl('redis+cluster://a:7000?x=1')).toThrow(/no database/);
  });

  it('groups Cluster batches by the hash tag Redis hashes', () => {
    expect(hashTag('sb:{acme/lobby}:meta')).toBe('acme/lobby');
    expect(hashTag('sb:u:{acme/alice}:conns')).toBe('acme/alice');
    expect(hashTag('plain')).toBe('plain');
    expect(hashTag('a{}b{c}')).toBe('a{}b{c}');
  });
});

describe('--redis in the configuration', () => {
  const cluster = { dev: true, nats: 'nats://n:4222', database: 'postgres://db/sb' };

  it('accepts redis://, rediss://, redis+sentinel:// and redis+cluster:// addresses, and refuses others (exit 2)', () => {
    for (const redis of ['redis://r:6379', 'rediss://:pw@r:6380/1', 'redis+sentinel://:pw@s1:26379,s2:26379/sb', 'redis+cluster://:pw@a:7000,b:7001'])
      expect(loadConfig({ ...cluster, redis }, {}).redis).toBe(redis);
    for (const redis of ['r:6379', 'http://r', 'redis+sentinel://s1:26379', 'redis+cluster://a:1/0'])
      expect(() => loadConfig({ ...cluster, redis }, {}), redis).toThrow(/--redis: expected redis:\/\//);
  });

  it('redacts the password of a Sentinel address in the printed configuration', () => {
    const printed = redactConfig(loadConfig({ ...cluster, redis: 'redis+sentinel://:secret-pw@s1:26379,s2:26379/sb' }, {}));
    expect(printed.redis).not.toContain('secret-pw');
    expect(printed.redis).toContain('s2:26379/sb');
  });
});
