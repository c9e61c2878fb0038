/**
 * Pusher apps in the one configuration schema (flag = env = file), and Pusher's signatures checked against
 * what the real `pusher` 5 server SDK computes (channel authorization, user authentication, HTTP requests).
 */
import { createHash, createHmac } from 'node:crypto';
import Pusher from 'pusher';
import { describe, expect, it } from 'vitest';
import { apiRequestRefusal, channelAuth, verifyChannelAuth, verifyUserAuth } from '../../src/auth/pusher-signing.js';
import { ConfigError, loadConfig, redactConfig } from '../../src/config/load.js';

const APP = { id: '1001', key: 'key-a', secret: 'secret-a-0123456' };
const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: '1', useTLS: false });

describe('pusherApps configuration', () => {
  const json = JSON.stringify([APP]);

  it('is read from a flag, an environment variable or a file, with Pusher’s defaults', () => {
    const fromFlag = loadConfig({ dev: true, pusherApps: json }, {});
    const fromEnv = loadConfig({ dev: true }, { SWITCHBOARD_PUSHER_APPS: json });
    expect(fromFlag.pusherApps).toEqual(fromEnv.pusherApps);
    expect(fromFlag.pusherApps[0]).toMatchObject({ ...APP, clientEvents: false, clientEventsPerSecond: 10, maxPresenceMembers: 100, maxEventBytes: 10_240 });
    expect(loadConfig({ dev: true }, {}).pusherApps).toEqual([]);
  });

  it('refuses text that is not a JSON array of apps, unknown fields, short secrets and repeated ids or keys', () => {
    const bad = [
      'not json',
      '{"id":"1"}',
      JSON.stringify([{ ...APP, extra: 1 }]),
      JSON.stringify([{ ...APP, secret: 'short' }]),
      JSON.stringify([APP, { ...APP, id: '2' }]),
      JSON.stringify([APP, { ...APP, key: 'k2' }]),
    ];
    for (const text of bad) expect(() => loadConfig({ dev: true, pusherApps: text }, {}), text).toThrow(ConfigError);
  });

  it('never prints a secret', () => {
    const printed = JSON.stringify(redactConfig(loadConfig({ dev: true, pusherApps: json }, {})));
    expect(printed).not.toContain(APP.secret);
    expect(printed).toContain(APP.key);
  });
});

describe('Pusher signatures', () => {
  it('channel authorization: the SDK’s auth verifies for its socket and channel (and channel_data), nothing else', () => {
    const priv = sdk.authorizeChannel('123.456', 'private-x');
    expect(priv.auth).toBe(channelAuth(APP, '123.456', 'private-x'));
    expect(verifyChannelAuth(APP, '123.456', 'private-x', priv.auth)).toBe(true);
    expect(verifyChannelAuth(APP, '123.457', 'private-x', priv.auth)).toBe(false);
    expect(verifyChannelAuth(APP, '123.456', 'private-y', priv.auth)).toBe(false);
    const pres = sdk.authorizeChannel('1.2', 'presence-x', { user_id: 'u1', user_info: { n: 1 } });
    expect(verifyChannelAuth(APP, '1.2', 'presence-x', pres.auth, pres.channel_data)).toBe(true);
    expect(verifyChannelAuth(APP, '1.2', 'presence-x', pres.auth, JSON.stringify({ user_id: 'admin' }))).toBe(false);
    expect(verifyChannelAuth({ ...APP, secret: 'other-secret-000' }, '1.2', 'presence-x', pres.auth, pres.channel_data)).toBe(false);
  });

  it('user authentication: the SDK’s authenticateUser verifies', () => {
    const signed = sdk.authenticateUser('9.9', { id: 'uma' });
    expect(verifyUserAuth(APP, '9.9', signed.user_data, signed.auth)).toBe(true);
    expect(verifyUserAuth(APP, '9.8', signed.user_data, signed.auth)).toBe(false);
    expect(verifyUserAuth(APP, '9.9', JSON.stringify({ id: 'root' }), signed.auth)).toBe(false);
  });

  it('HTTP requests: the SDK’s signed query holds; a changed body, a stale timestamp, another key or secret do not', () => {
    // The SDK's own request signing (lib/requests.js) is internal; sign as it does: sorted lower-case keys.
    const body = Buffer.from(JSON.stringify({ name: 'e', data: 'd', channel: 'c' }));
    const now = 1_800_000_000;
    const sign = (params: Record<string, string>, secret = APP.secret): URLSearchParams => {
      const text = Object.keys(params)
        .sort()
        .map((k) => `${k}=${params[k]}`)
        .join('&');
      return new URLSearchParams({ ...params, auth_signature: createHmac('sha256', secret).update(`POST\n/apps/1001/events\n${text}`).digest('hex') });
    };
    const params = { auth_key: APP.key, auth_timestamp: String(now), auth_version: '1.0', body_md5: createHash('md5').update(body).digest('hex') };
    expect(apiRequestRefusal(APP, 'POST', '/apps/1001/events', sign(params), body, now * 1000)).toBeNull();
    expect(apiRequestRefusal(APP, 'POST', '/apps/1001/events', sign(params), Buffer.from('{}'), now * 1000)).toMatch(/body_md5/);
    expect(apiRequestRefusal(APP, 'POST', '/apps/1001/events', sign(params), body, (now + 601) * 1000)).toMatch(/auth_timestamp/);
    expect(apiRequestRefusal(APP, 'POST', '/apps/1001/events', sign({ ...params, auth_key: 'other' }), body, now * 1000)).toMatch(/auth_key/);
    expect(apiRequestRefusal(APP, 'POST', '/apps/1001/events', sign(params, 'wrong-secret-000'), body, now * 1000)).toMatch(/signature/);
    expect(apiRequestRefusal(APP, 'GET', '/apps/1001/events', sign(params), body, now * 1000)).toMatch(/signature/);
  });
});
