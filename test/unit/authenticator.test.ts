/** Authenticator: HS256 / PEM public key / JWKS verification, claim mapping, error codes, dev mode. */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, type AuthOptions } from '../../src/auth/authenticator.js';
import { SwitchboardError, type ErrorCode } from '../../src/protocol/errors.js';

const SECRET = 'test-secret-that-is-long-enough-0123456789';
const nowS = (): number => Math.floor(Date.now() / 1000);

function hs256(claims: JWTPayload, options: { secret?: string; sub?: string | null; exp?: number | null } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (options.sub !== null) jwt.setSubject(options.sub ?? 'alice');
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? nowS() + 3600);
  return jwt.sign(new TextEncoder().encode(options.secret ?? SECRET));
}

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<SwitchboardError> {
  const err = await p.then(
    () => {
      throw new Error(`expected SwitchboardError ${code}, but authentication succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SwitchboardError);
  expect((err as SwitchboardError).code).toBe(code);
  return err as SwitchboardError;
}

const hsAuth = (extra: Partial<AuthOptions> = {}): Authenticator => new Authenticator({ jwtSecret: SECRET, dev: false, ...extra });

describe('Authenticator with an HS256 secret', () => {
  it('accepts a valid token and maps its claims', async () => {
    const exp = nowS() + 600;
    const token = await hs256({ tenant: 'acme', rooms: { join: ['lobby', 'team-*'], publish: ['lobby'] } }, { sub: 'alice', exp });
    const id = await hsAuth().authenticate(token, undefined);
    expect(id.user).toBe('alice');
    expect(id.tenant).toBe('acme');
    expect(id.expiresAt).toBe(exp * 1000);
    expect(id.canJoin('lobby')).toBe(true);
    expect(id.canJoin('team-red')).toBe(true);
    expect(id.canJoin('other')).toBe(false);
    expect(id.canPublish('lobby')).toBe(true);
    expect(id.canPublish('team-red')).toBe(false);
  });

  it('defaults the tenant to "default"; no rooms claim allows nothing; no exp means no expiry', async () => {
    const token = await hs256({}, { sub: 'bob', exp: null });
    const id = await hsAuth().authenticate(token, undefined);
    expect(id.user).toBe('bob');
    expect(id.tenant).toBe('default');
    expect(id.expiresAt).toBeUndefined();
    expect(id.canJoin('lobby')).toBe(false);
    expect(id.canPublish('lobby')).toBe(false);
  });

  it('maps the services claim to send and rpc topic patterns; without it no topic is allowed', async () => {
    const id = await hsAuth().authenticate(await hs256({ services: { send: ['orders.*'], rpc: ['calc.echo'] } }), undefined);
    expect(id.canSend('orders.create')).toBe(true);
    expect(id.canSend('calc.echo')).toBe(false);
    expect(id.canCall('calc.echo')).toBe(true);
    expect(id.canCall('orders.create')).toBe(false);
    const none = await hsAuth().authenticate(await hs256({ rooms: { join: ['*'] } }), undefined);
    expect(none.canSend('orders.create')).toBe(false);
    expect(none.canCall('orders.create')).toBe(false);
    await expectCode(hsAuth().authenticate(await hs256({ services: { send: 'orders.*' } }), undefined), 'unauthorized');
  });

  it('keeps join and publish independent', async () => {
    const token = await hs256({ rooms: { publish: ['*'] } });
    const id = await hsAuth().authenticate(token, undefined);
    expect(id.canPublish('anything')).toBe(true);
    expect(id.canJoin('anything')).toBe(false);
  });

  it('rejects an expired token with token_expired (retryable)', async () => {
    const token = await hs256({}, { exp: nowS() - 60 });
    const err = await expectCode(hsAuth().authenticate(token, undefined), 'token_expired');
    expect(err.retryable).toBe(true);
  });

  it('rejects a token signed with another secret', async () => {
    const token = await hs256({}, { secret: 'another-secret-that-is-long-enough' });
    const err = await expectCode(hsAuth().authenticate(token, undefined), 'unauthorized');
    expect(err.retryable).toBe(false);
  });

  it('rejects malformed tokens', async () => {
    const valid = await hs256({});
    const [header, payload] = valid.split('.');
    const tampered = `${header}.${Buffer.from(JSON.stringify({ sub: 'mallory' })).toString('base64url')}.${valid.split('.')[2]}`;
    for (const token of ['garbage', 'a.b.c', `${header}.${payload}`, `${header}.${payload}.`, tampered, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.']) {
      await expectCode(hsAuth().authenticate(token, undefined), 'unauthorized');
    }
  });

  it('rejects a token without sub, or with an invalid sub', async () => {
    await expectCode(hsAuth().authenticate(await hs256({}, { sub: null }), undefined), 'unauthorized');
    await expectCode(hsAuth().authenticate(await hs256({}, { sub: 'has space' }), undefined), 'unauthorized');
    await expectCode(hsAuth().authenticate(await hs256({}, { sub: '' }), undefined), 'unauthorized');
  });

  it('rejects an invalid tenant or malformed rooms claim', async () => {
    for (const tenant of ['bad tenant', 'a/b', '', 42]) {
      await expectCode(hsAuth().authenticate(await hs256({ tenant }), undefined), 'unauthorized');
    }
    await expectCode(hsAuth().authenticate(await hs256({ rooms: { join: 'lobby' } }), undefined), 'unauthorized');
  });

  it('requires a token outside dev mode', async () => {
    await expectCode(hsAuth().authenticate(undefined, 'alice'), 'unauthorized');
    await expectCode(hsAuth().authenticate('', undefined), 'unauthorized');
  });

  it('enforces issuer and audience when configured', async () => {
    const auth = hsAuth({ jwtIssuer: 'https://idp.example', jwtAudience: 'switchboard' });
    const good = await hs256({ iss: 'https://idp.example', aud: 'switchboard' });
    expect((await auth.authenticate(good, undefined)).user).toBe('alice');
    await expectCode(auth.authenticate(await hs256({ iss: 'https://evil.example', aud: 'switchboard' }), undefined), 'unauthorized');
    await expectCode(auth.authenticate(await hs256({ iss: 'https://idp.example', aud: 'other' }), undefined), 'unauthorized');
    await expectCode(auth.authenticate(await hs256({}), undefined), 'unauthorized');
  });
});

describe('Authenticator in dev mode', () => {
  it('gives an anonymous identity allowed everywhere when no token is sent', async () => {
    const auth = new Authenticator({ dev: true });
    const id = await auth.authenticate(undefined, undefined);
    expect(id.user).toMatch(/^anon-[a-z0-9]+$/);
    expect(id.tenant).toBe('default');
    expect(id.expiresAt).toBeUndefined();
    for (const room of ['lobby', 'team-red', 'x']) {
      expect(id.canJoin(room)).toBe(true);
      expect(id.canPublish(room)).toBe(true);
    }
    const other = await auth.authenticate('', undefined);
    expect(other.user).toMatch(/^anon-/);
    expect(other.user).not.toBe(id.user);
  });

  it('uses the requested dev user id when it is valid', async () => {
    const auth = new Authenticator({ dev: true });
    expect((await auth.authenticate(undefined, 'carol')).user).toBe('carol');
    expect((await auth.authenticate(undefined, 'not valid!')).user).toMatch(/^anon-/);
  });

  it('rejects a token when no key is configured', async () => {
    const auth = new Authenticator({ dev: true });
    await expectCode(auth.authenticate(await hs256({}), undefined), 'unauthorized');
  });

  it('verifies tokens normally when a key is configured', async () => {
    const auth = new Authenticator({ dev: true, jwtSecret: SECRET });
    expect((await auth.authenticate(await hs256({ tenant: 'acme' }), undefined)).tenant).toBe('acme');
    await expectCode(auth.authenticate(await hs256({}, { secret: 'another-secret-that-is-long-enough' }), undefined), 'unauthorized');
    expect((await auth.authenticate(undefined, 'dave')).user).toBe('dave');
  });
});

describe('Authenticator with a PEM public key', () => {
  async function signWith(privateKey: CryptoKey, alg: string, claims: JWTPayload = {}, sub = 'alice'): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg }).setSubject(sub).setExpirationTime('10m').sign(privateKey);
  }

  it('verifies RS256 tokens against an SPKI PEM', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const auth = new Authenticator({ jwtPublicKey: await exportSPKI(publicKey), dev: false });
    const id = await auth.authenticate(await signWith(privateKey, 'RS256', { tenant: 'acme', rooms: { join: ['*'] } }), undefined);
    expect(id).toMatchObject({ user: 'alice', tenant: 'acme' });
    expect(id.canJoin('any')).toBe(true);
    expect(id.canPublish('any')).toBe(false);

    const other = await generateKeyPair('RS256');
    await expectCode(auth.authenticate(await signWith(other.privateKey, 'RS256'), undefined), 'unauthorized');
    // An HS256 token (algorithm confusion) is refused.
    await expectCode(auth.authenticate(await hs256({}), undefined), 'unauthorized');
  });

  it('verifies ES256 tokens against an SPKI PEM', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const auth = new Authenticator({ jwtPublicKey: await exportSPKI(publicKey), dev: false });
    expect((await auth.authenticate(await signWith(privateKey, 'ES256'), undefined)).user).toBe('alice');
  });

  it('picks the algorithm from the key: ES384, ES512 and EdDSA keys verify their own tokens', async () => {
    for (const alg of ['ES384', 'ES512', 'EdDSA']) {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const auth = new Authenticator({ jwtPublicKey: await exportSPKI(publicKey), dev: false });
      expect((await auth.authenticate(await signWith(privateKey, alg), undefined)).user, alg).toBe('alice');
    }
  });

  it('fails at construction (not later, not as an unhandled rejection) on a PEM that is not a public key', () => {
    expect(() => new Authenticator({ jwtPublicKey: 'not a pem', dev: false })).toThrow();
  });

  it('maps expiry to token_expired', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const auth = new Authenticator({ jwtPublicKey: await exportSPKI(publicKey), dev: false });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256' })
      .setSubject('alice')
      .setExpirationTime(nowS() - 10)
      .sign(privateKey);
    await expectCode(auth.authenticate(token, undefined), 'token_expired');
  });
});

describe('Authenticator with a JWKS URL', () => {
  let server: Server;
  let jwksUrl: string;
  let requests = 0;
  let signing: { privateKey: CryptoKey; kid: string };
  let es: { privateKey: CryptoKey; kid: string };

  beforeAll(async () => {
    const rsa = await generateKeyPair('RS256');
    const ec = await generateKeyPair('ES256');
    const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
    const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
    signing = { privateKey: rsa.privateKey, kid: 'rsa-1' };
    es = { privateKey: ec.privateKey, kid: 'ec-1' };
    const body = JSON.stringify({ keys: [rsaJwk, ecJwk] });
    server = createServer((req, res) => {
      requests++;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const sign = (key: { privateKey: CryptoKey; kid: string }, alg: string, claims: JWTPayload = {}): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg, kid: key.kid }).setSubject('alice').setExpirationTime('10m').sign(key.privateKey);

  it('fetches the key set and verifies RS256 and ES256 tokens by kid', async () => {
    const auth = new Authenticator({ jwksUrl, dev: false });
    const before = requests;
    const id = await auth.authenticate(await sign(signing, 'RS256', { tenant: 'acme', rooms: { join: ['lobby'] } }), undefined);
    expect(id).toMatchObject({ user: 'alice', tenant: 'acme' });
    expect(id.canJoin('lobby')).toBe(true);
    expect((await auth.authenticate(await sign(es, 'ES256'), undefined)).user).toBe('alice');
    expect(requests - before).toBeGreaterThanOrEqual(1);
  });

  it('rejects tokens signed by a key that is not in the set', async () => {
    const auth = new Authenticator({ jwksUrl, dev: false });
    const stranger = await generateKeyPair('RS256');
    await expectCode(auth.authenticate(await sign({ privateKey: stranger.privateKey, kid: 'rsa-1' }, 'RS256'), undefined), 'unauthorized');
    await expectCode(auth.authenticate(await sign({ privateKey: stranger.privateKey, kid: 'unknown' }, 'RS256'), undefined), 'unauthorized');
    await expectCode(auth.authenticate(await hs256({}), undefined), 'unauthorized');
  });

  it('maps expiry to token_expired', async () => {
    const auth = new Authenticator({ jwksUrl, dev: false });
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: signing.kid })
      .setSubject('alice')
      .setExpirationTime(nowS() - 10)
      .sign(signing.privateKey);
    await expectCode(auth.authenticate(token, undefined), 'token_expired');
  });

  it('reports an unreachable key set as unauthorized', async () => {
    const auth = new Authenticator({ jwksUrl: jwksUrl.replace('jwks.json', 'missing.json'), dev: false });
    await expectCode(auth.authenticate(await sign(signing, 'RS256'), undefined), 'unauthorized');
  });
});
