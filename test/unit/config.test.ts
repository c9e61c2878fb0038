/** loadConfig: defaults, flags > env > file precedence, conventional URL env vars, validation; redactConfig. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, envName, loadConfig, redactConfig } from '../../src/config/load.js';
import { durableServiceList } from '../../src/config/schema.js';
import { DEFAULT_POLICY, RoomPolicies } from '../../src/messaging/room-policy.js';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${++fileCount}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const SECRET = 'a-secret-of-at-least-16-chars';
const SECRET_ENV = { SWITCHBOARD_JWT_SECRET: SECRET };

/** The ConfigError thrown by `fn` (fails the test if it does not throw one). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).name).toBe('ConfigError');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig defaults', () => {
  it('fills every default when only --dev is given', () => {
    const c = loadConfig({ dev: true }, {});
    expect(c).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      dataDir: './data',
      dev: true,
      maxFrameBytes: 65_536,
      maxBufferedBytes: 8_388_608,
      slowConsumerBytes: 1_048_576,
      slowConsumerMs: 2_000,
      publishTimeoutMs: 10_000,
      maxRoomsPerConnection: 100,
      maxConnections: 100_000,
      admissionRate: 2_000,
      admissionBurst: 4_000,
      retryAfterMinS: 1,
      retryAfterMaxS: 10,
      maxHttpBodyBytes: 262_144,
      pingIntervalMs: 25_000,
      pingTimeoutMs: 10_000,
      connectTimeoutMs: 10_000,
      presenceTtlMs: 45_000,
      presenceDiffMs: 250,
      recoveryWindow: 1_000,
      recoveryWindowMs: 120_000,
      recoveryMaxGap: 10_000,
      idempotencyMs: 600_000,
      drainSpreadMs: 5_000,
      drainTimeoutMs: 10_000,
      logLevel: 'info',
    });
    for (const k of ['nodeId', 'nats', 'redis', 'database', 'jwtSecret', 'jwtPublicKey', 'jwksUrl', 'apiKey'] as const) {
      expect(c[k]).toBeUndefined();
    }
  });

  it('does not read process.env when an env object is passed', () => {
    const key = 'SWITCHBOARD_PORT';
    const saved = process.env[key];
    process.env[key] = '1234';
    try {
      expect(loadConfig({ dev: true }, {}).port).toBe(8080);
    } finally {
      if (saved === undefined) delete process.env[key];
      else process.env[key] = saved;
    }
  });
});

describe('loadConfig sources and precedence', () => {
  it('maps option names to SWITCHBOARD_* env names', () => {
    expect(envName('port')).toBe('SWITCHBOARD_PORT');
    expect(envName('jwtSecret')).toBe('SWITCHBOARD_JWT_SECRET');
    expect(envName('maxFrameBytes')).toBe('SWITCHBOARD_MAX_FRAME_BYTES');
  });

  it('flags win over env, env over the config file, the file over defaults', () => {
    const file = configFile({ port: 1000, host: 'file-host', logLevel: 'warn', maxFrameBytes: 111, jwtSecret: SECRET });
    const env = { SWITCHBOARD_PORT: '2000', SWITCHBOARD_HOST: 'env-host', SWITCHBOARD_MAX_FRAME_BYTES: '222' };
    const c = loadConfig({ port: 3000 }, env, file);
    expect(c.port).toBe(3000); // flag
    expect(c.host).toBe('env-host'); // env over file
    expect(c.maxFrameBytes).toBe(222); // env over file
    expect(c.logLevel).toBe('warn'); // file over default
    expect(c.jwtSecret).toBe(SECRET); // from file
    expect(c.maxConnections).toBe(100_000); // default
  });

  it('coerces env strings to numbers and booleans', () => {
    const c = loadConfig({}, { SWITCHBOARD_DEV: 'true', SWITCHBOARD_PRESENCE_DIFF_MS: '75', SWITCHBOARD_NODE_ID: 'node-7' });
    expect(c.dev).toBe(true);
    expect(c.presenceDiffMs).toBe(75);
    expect(c.nodeId).toBe('node-7');
    for (const off of ['false', '0', 'no', 'FALSE']) {
      expect(loadConfig({}, { ...SECRET_ENV, SWITCHBOARD_DEV: off }).dev).toBe(false);
    }
  });

  it('ignores empty env values, undefined flags and unknown flags', () => {
    const c = loadConfig({ port: undefined, config: 'x.json', version: true }, { ...SECRET_ENV, SWITCHBOARD_PORT: '9000', SWITCHBOARD_HOST: '' });
    expect(c.port).toBe(9000);
    expect(c.host).toBe('0.0.0.0');
    expect(c).not.toHaveProperty('config');
    expect(c).not.toHaveProperty('version');
  });

  it('reads NATS_URL, REDIS_URL and DATABASE_URL', () => {
    const c = loadConfig({ dev: true }, { NATS_URL: 'nats://n:4222', REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://u:p@db:5432/sb' });
    expect(c.nats).toBe('nats://n:4222');
    expect(c.redis).toBe('redis://r:6379');
    expect(c.database).toBe('postgres://u:p@db:5432/sb');
  });

  it('prefers SWITCHBOARD_NATS etc. over the conventional names, and flags over both', () => {
    const env = {
      NATS_URL: 'nats://conventional:4222',
      SWITCHBOARD_NATS: 'nats://prefixed:4222',
      DATABASE_URL: 'postgres://conventional/db',
      REDIS_URL: 'redis://conventional:6379',
    };
    const c = loadConfig({ dev: true, database: 'postgres://flag/db' }, env);
    expect(c.nats).toBe('nats://prefixed:4222');
    expect(c.database).toBe('postgres://flag/db');
  });

  it('accepts each single key source without --dev', () => {
    expect(loadConfig({ jwtSecret: SECRET }, {}).jwtSecret).toBe(SECRET);
    expect(loadConfig({}, { SWITCHBOARD_JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----' }).jwtPublicKey).toContain('BEGIN');
    expect(loadConfig({}, { SWITCHBOARD_JWKS_URL: 'https://idp.example/jwks.json' }).jwksUrl).toBe('https://idp.example/jwks.json');
  });
});

describe('loadConfig validation', () => {
  it('requires a JWT key source unless --dev', () => {
    const err = configError(() => loadConfig({}, {}));
    expect(err.message).toMatch(/^invalid configuration:/);
    expect(err.message).toContain('--jwt-secret, --jwt-public-key, --jwks-url or a connect hook');
    expect(err.message).toContain('--dev');
    // A connect hook is a source of identities too.
    expect(loadConfig({ hooks: '{"connect":{"url":"http://127.0.0.1:9/c"}}' }, {}).hooks.connect).toMatchObject({
      timeoutMs: 2000,
      concurrency: 64,
      failOpen: false,
      cookies: [],
    });
  });

  it('hooks: JSON from a flag, defaults, and refusals', () => {
    const c = loadConfig({ dev: true, hooks: '{"join":{"url":"https://a.example/j","failOpen":true},"publish":{"url":"http://b/p","timeoutMs":100}}' }, {});
    expect(c.hooks.join).toEqual({ url: 'https://a.example/j', timeoutMs: 2000, concurrency: 64, failOpen: true });
    expect(c.hooks.publish?.timeoutMs).toBe(100);
    for (const [hooks, why] of [
      ['{"join":{"url":"ftp://x"}}', 'http(s)://… or nats:<subject>'],
      ['{"join":{"url":"nats:app.join"}}', 'a nats: hook needs --nats'],
      ['{"connect":{"url":"http://x/c","failOpen":true}}', 'hooks'],
      ['{"leave":{"url":"http://x/l"}}', 'hooks'],
      ['{"join":', 'hooks'],
    ] as const) {
      expect(configError(() => loadConfig({ dev: true, hooks }, {})).message, hooks).toContain(why);
    }
  });

  it('room policies: JSON from a flag or the env, defaults per rule, first match wins, and refusals', () => {
    const c = loadConfig({ dev: true, roomPolicies: '[{"rooms":["prices-*"],"delivery":"conflate"},{"tenant":"acme","maxPublishRate":5}]' }, {});
    expect(c.roomPolicies).toEqual([
      { tenant: '*', rooms: ['prices-*'], delivery: 'conflate', maxPublishRate: 0, conflateKeys: 10_000 },
      { tenant: 'acme', rooms: ['*'], delivery: 'ordered', maxPublishRate: 5, conflateKeys: 10_000 },
    ]);
    const policies = new RoomPolicies(c.roomPolicies);
    expect(policies.of('acme', 'prices-x')).toMatchObject({ delivery: 'conflate', maxPublishRate: 0 });
    expect(policies.of('acme', 'chat')).toMatchObject({ delivery: 'ordered', maxPublishRate: 5 });
    expect(policies.of('other', 'chat')).toBe(DEFAULT_POLICY);
    expect(loadConfig({ dev: true }, { SWITCHBOARD_ROOM_POLICIES: '[{"rooms":["t"],"delivery":"drop"}]' }).roomPolicies[0]!.delivery).toBe('drop');
    for (const [roomPolicies, why] of [
      ['[{"rooms":["a"],"delivery":"bogus"}]', '"ordered"|"conflate"|"drop"'],
      ['[{"rooms":[]}]', '>=1'],
      ['[{"rooms":["a"],"maxPublishRate":-1}]', '--room-policies'],
      ['[{"rooms":["a"],"tenant":"a/b"}]', 'tenant'],
      ['[{"rooms":["a"],"speed":1}]', '--room-policies'],
      ['not json', '--room-policies'],
    ] as const) {
      expect(configError(() => loadConfig({ dev: true, roomPolicies }, {})).message, roomPolicies).toContain(why);
    }
  });

  it('rejects two key sources, also when they come from different places', () => {
    const both = configError(() => loadConfig({ jwtSecret: SECRET, jwksUrl: 'https://idp.example/jwks' }, {}));
    expect(both.message).toContain('give only one of --jwt-secret, --jwt-public-key, --jwks-url');
    const file = configFile({ jwtPublicKey: 'PEM' });
    const mixed = configError(() => loadConfig({ dev: true }, SECRET_ENV, file));
    expect(mixed.message).toContain('give only one of');
  });

  it('rejects a bad port, naming the option', () => {
    for (const port of ['70000', '-1', 'abc', '80.5']) {
      const err = configError(() => loadConfig({ dev: true }, { SWITCHBOARD_PORT: port }));
      expect(err.message).toContain('--port:');
    }
    expect(configError(() => loadConfig({ dev: true, port: 65_536 }, {})).message).toContain('--port:');
    expect(loadConfig({ dev: true, port: '0' }, {}).port).toBe(0);
    expect(loadConfig({ dev: true, port: 65_535 }, {}).port).toBe(65_535);
  });

  it('rejects short secrets, bad enums, non-positive limits and an inverted Retry-After range', () => {
    expect(configError(() => loadConfig({ jwtSecret: 'short' }, {})).message).toContain('--jwt-secret: jwt secret: at least 16 characters');
    expect(configError(() => loadConfig({ dev: true, apiKey: 'short' }, {})).message).toContain('--api-key:');
    expect(configError(() => loadConfig({ dev: true, logLevel: 'loud' }, {})).message).toContain('--log-level:');
    expect(configError(() => loadConfig({ dev: true }, { SWITCHBOARD_MAX_FRAME_BYTES: '0' })).message).toContain('--max-frame-bytes:');
    expect(configError(() => loadConfig({ dev: true, nodeId: 'bad id!' }, {})).message).toContain('--node-id:');
    expect(configError(() => loadConfig({ dev: true, jwksUrl: 'not a url' }, {})).message).toContain('--jwks-url:');
    expect(configError(() => loadConfig({ dev: true, retryAfterMinS: 5, retryAfterMaxS: 2 }, {})).message).toContain(
      'retry-after-max-s must be >= retry-after-min-s',
    );
  });

  it('lists every invalid field, one per line', () => {
    const err = configError(() => loadConfig({ dev: true, port: 'abc', logLevel: 'loud' }, {}));
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('invalid configuration:');
    expect(lines.some((l) => l.startsWith('  --port:'))).toBe(true);
    expect(lines.some((l) => l.startsWith('  --log-level:'))).toBe(true);
  });

  it('rejects unknown config-file keys, naming them', () => {
    const file = configFile({ port: 1, bogus: true, maxFrameByte: 5, dev: true });
    const err = configError(() => loadConfig({}, {}, file));
    expect(err.message).toContain(file);
    expect(err.message).toContain('unknown keys bogus, maxFrameByte');
  });

  it('rejects unreadable, non-JSON and non-object config files', () => {
    expect(configError(() => loadConfig({ dev: true }, {}, join(dir, 'missing.json'))).message).toContain('cannot read config file');
    expect(configError(() => loadConfig({ dev: true }, {}, configFile('{"port": 1,'))).message).toContain('cannot read config file');
    expect(configError(() => loadConfig({ dev: true }, {}, configFile([1, 2]))).message).toContain('must hold a JSON object');
    expect(configError(() => loadConfig({ dev: true }, {}, configFile('null'))).message).toContain('must hold a JSON object');
  });

  it('validates values from the config file too', () => {
    const err = configError(() => loadConfig({ dev: true }, {}, configFile({ port: 'x' })));
    expect(err.message).toContain('--port:');
  });
});

describe('redactConfig', () => {
  it('replaces jwtSecret, apiKey and URL passwords, keeping everything else', () => {
    const apiKey = 'api-key-of-at-least-16-chars';
    const config = loadConfig(
      { jwtSecret: SECRET, apiKey },
      {
        NATS_URL: 'nats://natsuser:natspass@nats:4222',
        REDIS_URL: 'redis://:redispass@redis:6379/0',
        DATABASE_URL: 'postgres://pguser:pgpass@db:5432/switchboard?sslmode=require',
      },
    );
    const out = redactConfig(config);
    expect(out.jwtSecret).toBe('[redacted]');
    expect(out.apiKey).toBe('[redacted]');
    expect(out.nats).toBe('nats://natsuser:[redacted]@nats:4222');
    expect(out.redis).toBe('redis://:[redacted]@redis:6379/0');
    expect(out.database).toBe('postgres://pguser:[redacted]@db:5432/switchboard?sslmode=require');
    expect(out.port).toBe(8080);
    const printed = JSON.stringify(out);
    for (const secret of [SECRET, apiKey, 'natspass', 'redispass', 'pgpass']) expect(printed).not.toContain(secret);
    // The config itself is untouched.
    expect(config.jwtSecret).toBe(SECRET);
    expect(config.database).toContain('pgpass');
  });

  it('leaves URLs without a password and absent secrets alone', () => {
    const config = loadConfig({ dev: true }, { NATS_URL: 'nats://nats:4222', REDIS_URL: 'redis://user@redis:6379', DATABASE_URL: 'postgres://db/sb' });
    const out = redactConfig(config);
    expect(out.nats).toBe('nats://nats:4222');
    expect(out.redis).toBe('redis://user@redis:6379');
    expect(out.database).toBe('postgres://db/sb');
    expect(out.jwtSecret).toBeUndefined();
    expect(out.apiKey).toBeUndefined();
  });
});

describe('cluster configuration', () => {
  it('cluster mode needs NATS (or --backplane redis), Redis and PostgreSQL; --workers needs a shared backplane', () => {
    expect(() => loadConfig({ dev: true, nats: 'nats://n:4222' }, {})).toThrow(/--redis.*\n.*--database|--database/s);
    expect(() => loadConfig({ dev: true, redis: 'redis://r', database: 'postgres://d/x' }, {})).not.toThrow();
    expect(loadConfig({ dev: true, redis: 'redis://r', database: 'postgres://d/x' }, {}).backplane).toBeUndefined();
    expect(() => loadConfig({ dev: true, redis: 'redis://r', database: 'postgres://d/x', backplane: 'nats' }, {})).toThrow(/--nats/);
    expect(() => loadConfig({ dev: true, workers: '2' }, {})).toThrow(/--workers needs a shared backplane/);
    expect(loadConfig({ dev: true, workers: 'auto', nats: 'nats://n', redis: 'redis://r', database: 'postgres://d/x' }, {}).workers).toBe('auto');
    expect(() => loadConfig({ dev: true, backplane: 'redis' }, {})).toThrow(/cluster mode/);
  });

  it('--durable-services is a comma-separated list of service names and needs --nats', () => {
    const cluster = { dev: true, nats: 'nats://n', redis: 'redis://r', database: 'postgres://d/x' };
    expect(durableServiceList(loadConfig({ ...cluster, durableServices: ' orders, billing_v2 ,' }, {}).durableServices)).toEqual(['orders', 'billing_v2']);
    expect(durableServiceList(loadConfig({ dev: true }, {}).durableServices)).toEqual([]);
    expect(() => loadConfig({ ...cluster, durableServices: 'Orders' }, {})).toThrow(/durable-services/);
    expect(() => loadConfig({ dev: true, durableServices: 'orders' }, {})).toThrow(/--durable-services needs --nats/);
  });
});

describe('webhooks configuration', () => {
  const app = { id: 'app1', key: 'key1', secret: 'app-secret-1' };
  it('takes a Pusher app webhook as a URL (the four presence events of every channel) or in full', () => {
    const c = loadConfig(
      {
        dev: true,
        pusherApps: JSON.stringify([{ ...app, webhooks: ['https://a.example/h', { url: 'https://b.example/h', clientEventRooms: ['private-*'] }] }]),
      },
      {},
    );
    expect(c.pusherApps[0]!.webhooks).toEqual([
      { url: 'https://a.example/h', events: ['room_occupied', 'room_vacated', 'member_added', 'member_removed'], rooms: ['*'], clientEventRooms: [] },
      {
        url: 'https://b.example/h',
        events: ['room_occupied', 'room_vacated', 'member_added', 'member_removed'],
        rooms: ['*'],
        clientEventRooms: ['private-*'],
      },
    ]);
    expect(c.webhookGraceMs).toBe(5000);
  });

  it('takes native tenant webhooks from a flag, with defaults, and redacts their secrets', () => {
    const c = loadConfig({ dev: true, webhooks: JSON.stringify([{ tenant: 'acme', secret: SECRET, url: 'https://acme.example/h' }]) }, {});
    expect(c.webhooks).toEqual([
      {
        tenant: 'acme',
        secret: SECRET,
        url: 'https://acme.example/h',
        events: ['room_occupied', 'room_vacated', 'member_added', 'member_removed'],
        rooms: ['*'],
        clientEventRooms: [],
      },
    ]);
    expect(JSON.stringify(redactConfig(c))).not.toContain(SECRET);
  });

  it('refuses a bad URL, an unknown event, a short secret, and a native webhook for a Pusher app id', () => {
    for (const webhooks of [
      [{ tenant: 'acme', secret: SECRET, url: 'not a url' }],
      [{ tenant: 'acme', secret: SECRET, url: 'https://x.example', events: ['room_exploded'] }],
      [{ tenant: 'acme', secret: 'short', url: 'https://x.example' }],
    ]) {
      expect(configError(() => loadConfig({ dev: true, webhooks: JSON.stringify(webhooks) }, {})).message).toContain('--webhooks');
    }
    const err = configError(() =>
      loadConfig(
        { dev: true, pusherApps: JSON.stringify([app]), webhooks: JSON.stringify([{ tenant: 'app1', secret: SECRET, url: 'https://x.example' }]) },
        {},
      ),
    );
    expect(err.message).toContain('is a Pusher app');
  });
});
