/**
 * JWT authentication. Keys: an HS256 shared secret, an RS256/ES256 public key (PEM, SPKI), or a JWKS
 * URL (keys fetched and cached by jose). Claims:
 *   sub     user id (required)
 *   tenant  tenant name (default "default")
 *   rooms   { join?: string[], publish?: string[] } room patterns (`*` globs); publish implies nothing
 *           about join: a room must be joined before publishing, so give both where needed.
 *           A missing `rooms` claim allows nothing.
 *   services { send?: string[], rpc?: string[] } service topic patterns (`orders.*`, `*`) for `send`
 *           and `rpc` frames; a missing `services` claim allows nothing.
 *   exp     expiry (seconds); an open connection is closed with 4005 when it passes, unless a `refresh`
 *           frame gave it a newer token first.
 *   jti     token id: `POST /api/revoke {"jti":…}` revokes this token (every node closes its connections).
 *   iat     issue time (seconds): `POST /api/revoke {"user":…}` revokes the user's tokens issued before it.
 */
import { createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, importSPKI, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { SwitchboardError } from '../protocol/errors.js';
import { isTenantName, isUserId } from '../protocol/names.js';
import type { Identity } from './identity.js';
import { compilePatterns } from './patterns.js';

export interface AuthOptions {
  jwtSecret?: string;
  jwtPublicKey?: string;
  jwksUrl?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  dev: boolean;
}

const claimsSchema = z.object({
  sub: z.string().refine(isUserId, 'sub must be a valid user id'),
  tenant: z.string().refine(isTenantName, 'tenant must be a valid tenant name').optional(),
  rooms: z.object({ join: z.array(z.string().max(256)).max(256).optional(), publish: z.array(z.string().max(256)).max(256).optional() }).optional(),
  services: z.object({ send: z.array(z.string().max(256)).max(256).optional(), rpc: z.array(z.string().max(256)).max(256).optional() }).optional(),
});

const DEFAULT_TENANT = 'default';
const allowAll = compilePatterns(['*']);

export class Authenticator {
  private readonly key: Uint8Array | JWTVerifyGetKey | ReturnType<typeof importSPKI> | undefined;
  private readonly algorithms: string[];

  constructor(private readonly options: AuthOptions) {
    if (options.jwtSecret) {
      this.key = new TextEncoder().encode(options.jwtSecret);
      this.algorithms = ['HS256', 'HS384', 'HS512'];
    } else if (options.jwtPublicKey) {
      const alg = detectAlg(options.jwtPublicKey);
      this.key = importSPKI(options.jwtPublicKey, alg);
      this.algorithms = [alg];
    } else if (options.jwksUrl) {
      this.key = createRemoteJWKSet(new URL(options.jwksUrl));
      this.algorithms = ['RS256', 'ES256', 'RS384', 'ES384', 'RS512', 'PS256'];
    } else {
      this.key = undefined;
      this.algorithms = [];
    }
  }

  /** Verifies a connect frame's credentials; throws SwitchboardError `unauthorized` or `token_expired`. */
  async authenticate(token: string | undefined, devUser: string | undefined): Promise<Identity> {
    if (token === undefined || token === '') {
      if (this.options.dev) return devIdentity(devUser);
      throw new SwitchboardError('unauthorized', 'a token is required');
    }
    if (this.key === undefined) {
      // Dev mode without keys: tokens are not verifiable, so they are rejected rather than trusted.
      throw new SwitchboardError('unauthorized', 'this node has no JWT key configured; connect without a token in dev mode');
    }
    if (!isCanonicalCompactJws(token)) {
      // jose decodes leniently (padding, stray trailing bits): one signature must have one encoding.
      throw new SwitchboardError('unauthorized', 'invalid token: not a compact JWS of three canonical base64url segments (RFC 7515 §2: no padding)');
    }
    let payload: JWTPayload;
    try {
      const key = await this.key;
      const opts = { algorithms: this.algorithms, issuer: this.options.jwtIssuer, audience: this.options.jwtAudience };
      payload = typeof key === 'function' ? (await jwtVerify(token, key, opts)).payload : (await jwtVerify(token, key, opts)).payload;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWT_EXPIRED') throw new SwitchboardError('token_expired', 'token has expired', { cause: err });
      throw new SwitchboardError('unauthorized', `invalid token: ${(err as Error).message}`, { cause: err });
    }
    const parsed = claimsSchema.safeParse(payload);
    if (!parsed.success) {
      throw new SwitchboardError('unauthorized', `invalid token claims: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    }
    const { sub, tenant, rooms, services } = parsed.data;
    return {
      ...grantedIdentity({
        user: sub,
        ...(tenant !== undefined ? { tenant } : {}),
        ...(rooms !== undefined ? { rooms } : {}),
        ...(services !== undefined ? { services } : {}),
      }),
      ...(payload.exp !== undefined ? { expiresAt: payload.exp * 1000 } : {}),
      ...(typeof payload.jti === 'string' && payload.jti !== '' ? { tokenId: payload.jti } : {}),
      ...(typeof payload.iat === 'number' ? { issuedAt: payload.iat * 1000 } : {}),
    };
  }
}

/** What a token's claims or the connect hook's answer grant (names already checked against protocol/names.ts). */
export interface Grant {
  readonly user: string;
  readonly tenant?: string;
  readonly rooms?: { readonly join?: readonly string[]; readonly publish?: readonly string[] };
  readonly services?: { readonly send?: readonly string[]; readonly rpc?: readonly string[] };
}

/** The identity a grant describes: patterns compiled once; a missing list allows nothing. */
export function grantedIdentity(g: Grant): Identity {
  return {
    user: g.user,
    tenant: g.tenant ?? DEFAULT_TENANT,
    canJoin: compilePatterns(g.rooms?.join ?? []),
    canPublish: compilePatterns(g.rooms?.publish ?? []),
    canSend: compilePatterns(g.services?.send ?? []),
    canCall: compilePatterns(g.services?.rpc ?? []),
  };
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * A compact JWS (`header.payload.signature`) whose every segment is canonical base64url (RFC 7515 §2,
 * RFC 4648 §5): only the URL-safe alphabet, no `=` padding, no impossible length, and zero unused
 * trailing bits, i.e. the only encoding of its bytes. A segment that decodes and re-encodes to itself
 * is exactly that.
 */
export function isCanonicalCompactJws(token: string): boolean {
  const segments = token.split('.');
  if (segments.length !== 3) return false;
  return segments.every((s) => s.length > 0 && BASE64URL.test(s) && Buffer.from(s, 'base64url').toString('base64url') === s);
}

function devIdentity(user: string | undefined): Identity {
  const id = user !== undefined && isUserId(user) ? user : `anon-${Math.random().toString(36).slice(2, 8)}`;
  return { user: id, tenant: DEFAULT_TENANT, canJoin: allowAll, canPublish: allowAll, canSend: allowAll, canCall: allowAll };
}

/** The JWS algorithm a PEM (SPKI) public key is used with: RS256 for RSA, ES256/384/512 by curve, EdDSA. */
function detectAlg(pem: string): string {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ES256';
    if (curve === 'secp384r1') return 'ES384';
    if (curve === 'secp521r1') return 'ES512';
  }
  throw new Error(`unsupported public key type for --jwt-public-key: ${key.asymmetricKeyType ?? 'unknown'}`);
}
