/**
 * The RevocationStore conformance suite (contract: src/engines/revocations/revocations.ts). Every implementation
 * runs it: memory (test/conformance/memory.test.ts) and Redis (redis-engines.test.ts), with two instances standing
 * for two nodes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RevocationStore } from '../../src/engines/revocations/revocations.js';
import { waitFor } from '../helpers/wait.js';

export interface RevocationHarness {
  /** `n` stores sharing one state, as `n` nodes would (an in-process implementation may return one instance `n` times). */
  stores(n: number): Promise<RevocationStore[]>;
  cleanup(): Promise<void>;
}

const HOUR = 3_600_000;

export function revocationConformance(name: string, open: () => Promise<RevocationHarness>): void {
  describe(`RevocationStore conformance: ${name}`, () => {
    let harness: RevocationHarness | undefined;
    afterEach(async () => {
      await harness?.cleanup();
      harness = undefined;
    });
    const two = async (): Promise<[RevocationStore, RevocationStore]> => {
      harness = await open();
      const [a, b] = await harness.stores(2);
      return [a!, b!];
    };

    it('a revoked token id is refused on every instance, for its tenant only, and other tokens are not', async () => {
      const [a, b] = await two();
      expect(a.isRevoked({ tenant: 't1', user: 'u', tokenId: 'j1' })).toBe(false);
      expect(a.active()).toBe(false);
      await a.revoke({ kind: 'token', tenant: 't1', jti: 'j1', until: Date.now() + HOUR });
      expect(a.isRevoked({ tenant: 't1', user: 'u', tokenId: 'j1' })).toBe(true);
      await waitFor(() => b.isRevoked({ tenant: 't1', user: 'u', tokenId: 'j1' }), 2_000, 'the other instance knows the revocation');
      expect(b.active()).toBe(true);
      for (const s of [a, b]) {
        expect(s.isRevoked({ tenant: 't2', user: 'u', tokenId: 'j1' })).toBe(false);
        expect(s.isRevoked({ tenant: 't1', user: 'u', tokenId: 'j2' })).toBe(false);
        expect(s.isRevoked({ tenant: 't1', user: 'u' })).toBe(false);
      }
    });

    it("a user's revocation refuses tokens issued at or before it (and tokens without iat), not later ones", async () => {
      const [a, b] = await two();
      const at = Date.now();
      await a.revoke({ kind: 'user', tenant: 't1', user: 'alice', before: at, until: at + HOUR });
      await waitFor(() => b.isRevoked({ tenant: 't1', user: 'alice', issuedAt: at - 1000 }), 2_000, 'the other instance knows the revocation');
      for (const s of [a, b]) {
        expect(s.isRevoked({ tenant: 't1', user: 'alice', issuedAt: at })).toBe(true);
        expect(s.isRevoked({ tenant: 't1', user: 'alice' })).toBe(true);
        expect(s.isRevoked({ tenant: 't1', user: 'alice', tokenId: 'x', issuedAt: at + 1000 })).toBe(false);
        expect(s.isRevoked({ tenant: 't1', user: 'bob', issuedAt: at - 1000 })).toBe(false);
        expect(s.isRevoked({ tenant: 't2', user: 'alice', issuedAt: at - 1000 })).toBe(false);
      }
    });

    it('revoking again keeps the later before and until; a revocation stops matching once until passes', async () => {
      const [a, b] = await two();
      const at = Date.now();
      await a.revoke({ kind: 'user', tenant: 't1', user: 'alice', before: at, until: at + 1_500 });
      await b.revoke({ kind: 'user', tenant: 't1', user: 'alice', before: at - 10_000, until: at + 600 });
      const later = { tenant: 't1', user: 'alice', issuedAt: at - 1 };
      await waitFor(() => a.isRevoked(later) && b.isRevoked(later), 2_000, 'both know the merged revocation');
      await waitFor(() => Date.now() > at + 700, 2_000, 'the shorter until passed');
      expect(a.isRevoked(later) && b.isRevoked(later)).toBe(true);
      await waitFor(() => !a.isRevoked(later) && !b.isRevoked(later), 5_000, 'the revocation expired on both');
      expect(a.active() || b.active()).toBe(false);
    });
  });
}
