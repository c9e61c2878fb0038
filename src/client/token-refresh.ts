/**
 * Refreshing a connection's token ahead of its expiry (with `getToken`; protocol.md §2.4): when to ask, one timer at
 * a time, and handing the new token to the connection, which sends it in a `refresh` frame on the socket the timer
 * was armed for.
 */
import { SwitchboardClientError } from './errors.js';

type Timer = ReturnType<typeof setTimeout>;

/** Id of the `refresh` frames. */
export const REFRESH_ID = 'refresh';

/**
 * When to refresh a token that expires in `remainingMs`: a fifth of its remaining life before, at least 1 s and at
 * most 30 s before, and never sooner than 500 ms from now.
 */
export function refreshAhead(remainingMs: number): number {
  const lead = Math.min(30_000, Math.max(1_000, remainingMs / 5));
  return Math.max(500, remainingMs - lead);
}

/** The token for an attempt or a refresh: the static one, or a fresh one from `getToken` (checked: a non-empty string). */
export async function tokenFrom(token: string | undefined, getToken: (() => string | Promise<string>) | undefined): Promise<string | undefined> {
  if (getToken === undefined) return token;
  let t: unknown;
  try {
    t = await getToken();
  } catch (err) {
    throw new SwitchboardClientError('token_unavailable', `getToken() threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof t !== 'string' || t === '') throw new SwitchboardClientError('token_unavailable', 'getToken() must return a non-empty string');
  return t;
}

/** The error of a close that only a fresh token can get past (4005 expired, 4006 revoked), else null. */
export function staleToken(closeCode: number, serverCode: string | undefined): 'token_expired' | 'token_revoked' | null {
  if (closeCode === 4005 || serverCode === 'token_expired') return 'token_expired';
  return closeCode === 4006 || serverCode === 'token_revoked' ? 'token_revoked' : null;
}

export class TokenRefresh {
  private timer: Timer | null = null;
  /** The current token's expiry (ms since the epoch), or null when it does not expire or nothing is armed. */
  expiresAt: number | null = null;

  constructor(private readonly onError: (err: SwitchboardClientError) => void) {}

  /**
   * The token expires at `expiresAt` (null: never, nothing to do): get a fresh one from `token()` ahead of it (or
   * after `delayMs`) and give it to `send`.
   */
  arm(expiresAt: number | null, token: () => Promise<string | undefined>, send: (token: string) => void, delayMs?: number): void {
    this.stop();
    this.expiresAt = expiresAt;
    if (expiresAt === null) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        token().then((t) => t !== undefined && send(t), this.onError);
      },
      delayMs ?? refreshAhead(expiresAt - Date.now()),
    );
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.expiresAt = null;
  }
}
