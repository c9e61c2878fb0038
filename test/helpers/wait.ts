/** Small polling helpers for tests that must not depend on how fast the machine is. */

/** Resolves after `ms` milliseconds. Only use as a lower bound ("at least this long passed"). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `predicate` (sync or async) every `intervalMs` until it returns true; rejects with `message`
 * (or a generic one) if it has not within `timeoutMs`.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000, message = 'condition', intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await sleep(intervalMs);
  }
}

/** A promise with its resolve/reject exposed, e.g. to hold a handler until the test releases it. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
