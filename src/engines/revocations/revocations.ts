/**
 * RevocationStore: revoked tokens and users, shared by every node of a deployment, each until it expires. The
 * gateway asks it at every connect and token refresh, and its once-a-second sweep closes open connections whose
 * token it names; the HTTP API (`POST /api/revoke`) writes it.
 *
 * Contract (test/conformance/revocations.suite.ts):
 * - `revoke` resolves once the revocation is stored for the whole deployment; from then on `isRevoked` of every
 *   instance (every node's) matches it within `pollMs` (an in-process store: at once), until `until` passes.
 * - A token revocation matches the tokens of its tenant with that `jti`. A user revocation matches that user's
 *   tokens issued at or before `before` (and tokens without `iat`), so a token issued after it is accepted.
 *   Nothing matches another tenant's tokens.
 * - Revoking the same token or user again keeps the later `before` and the later `until`.
 * - `isRevoked` is synchronous: it reads the instance's copy, never the network.
 */
export type Revocation =
  | { readonly kind: 'token'; readonly tenant: string; readonly jti: string; readonly until: number }
  | { readonly kind: 'user'; readonly tenant: string; readonly user: string; readonly before: number; readonly until: number };

/** What a revocation is matched against: the identity a token gave (auth/identity.ts `Identity` is one as it is). */
export interface TokenRef {
  readonly tenant: string;
  readonly user: string;
  /** The token's `jti`. */
  readonly tokenId?: string;
  /** The token's `iat`, ms. */
  readonly issuedAt?: number;
}

export interface RevocationStore {
  readonly kind: string;
  revoke(r: Revocation): Promise<void>;
  isRevoked(t: TokenRef): boolean;
  /** Whether any revocation is in force as this instance knows (the sweep checks connections only then). */
  active(): boolean;
  health(): { ok: boolean; detail?: string };
  close(): Promise<void>;
}

/** The key of a revocation in a store: `t\0tenant\0jti` or `u\0tenant\0user`. */
export function revocationKey(r: { kind: 'token'; tenant: string; jti: string } | { kind: 'user'; tenant: string; user: string }): string {
  return r.kind === 'token' ? `t\u0000${r.tenant}\u0000${r.jti}` : `u\u0000${r.tenant}\u0000${r.user}`;
}

/** One instance's copy of the revocations in force: key → { before, until } (before is 0 for a token revocation). */
export class RevocationSet {
  private readonly entries = new Map<string, { before: number; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Adds a revocation, keeping the later `before` and `until` of an existing one. */
  add(key: string, before: number, until: number): void {
    const old = this.entries.get(key);
    this.entries.set(key, old === undefined ? { before, until } : { before: Math.max(old.before, before), until: Math.max(old.until, until) });
  }

  clear(): void {
    this.entries.clear();
  }

  matches(t: TokenRef): boolean {
    if (this.entries.size === 0) return false;
    const now = this.now();
    if (t.tokenId !== undefined) {
      const byToken = this.entries.get(revocationKey({ kind: 'token', tenant: t.tenant, jti: t.tokenId }));
      if (byToken !== undefined && byToken.until > now) return true;
    }
    const byUser = this.entries.get(revocationKey({ kind: 'user', tenant: t.tenant, user: t.user }));
    return byUser !== undefined && byUser.until > now && (t.issuedAt === undefined || t.issuedAt <= byUser.before);
  }

  /** Drops expired revocations; true when some remain. */
  prune(): boolean {
    const now = this.now();
    for (const [key, e] of this.entries) if (e.until <= now) this.entries.delete(key);
    return this.entries.size > 0;
  }

  get size(): number {
    return this.entries.size;
  }
}
