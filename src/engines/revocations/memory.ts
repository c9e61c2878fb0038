/**
 * MemoryRevocationStore: the embedded RevocationStore, in-process (one node). Revocations live as long as the
 * process: a restart forgets them (documented in docs/operations.md; tokens should be short-lived anyway).
 */
import { EngineError } from '../errors.js';
import { RevocationSet, revocationKey, type Revocation, type RevocationStore, type TokenRef } from './revocations.js';

export class MemoryRevocationStore implements RevocationStore {
  readonly kind = 'memory';
  private readonly set: RevocationSet;
  private closed = false;

  constructor(now: () => number = Date.now) {
    this.set = new RevocationSet(now);
  }

  revoke(r: Revocation): Promise<void> {
    if (this.closed) return Promise.reject(new EngineError('revocations', 'closed', 'revocation store is closed'));
    this.set.prune();
    this.set.add(revocationKey(r), r.kind === 'user' ? r.before : 0, r.until);
    return Promise.resolve();
  }

  isRevoked(t: TokenRef): boolean {
    return this.set.matches(t);
  }

  active(): boolean {
    return this.set.size > 0 && this.set.prune();
  }

  health(): { ok: boolean; detail?: string } {
    return this.closed ? { ok: false, detail: 'closed' } : { ok: true };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
