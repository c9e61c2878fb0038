/**
 * Exponential backoff with full jitter: attempt n (1-based) waits a uniformly random time in
 * [0, min(maxMs, minMs × factor^(n−1))). Spreading every client over the whole window keeps a fleet that lost
 * its node at the same instant from coming back at the same instant (no thundering herd).
 */
export interface BackoffOptions {
  /** Upper bound of the first attempt's window, ms. Default 500. */
  minMs: number;
  /** Cap of the window, ms. Default 20000. */
  maxMs: number;
  /** Growth of the window per attempt. Default 2. */
  factor: number;
}

export const defaultBackoff: BackoffOptions = { minMs: 500, maxMs: 20_000, factor: 2 };

/** The window (exclusive upper bound of the delay) of attempt `attempt` ≥ 1. */
export function backoffWindow(attempt: number, o: BackoffOptions): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 64);
  return Math.min(o.maxMs, o.minMs * Math.pow(o.factor, exp));
}

/** A full-jitter delay for attempt `attempt` ≥ 1, in whole ms. `random` returns [0, 1). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(random() * backoffWindow(attempt, o));
}
