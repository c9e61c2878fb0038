/**
 * `p`, or a rejection with `message` when it has not settled within `ms`. The operation itself is not
 * stopped: its late result is ignored, so callers use this only where a retry is safe (an idempotent
 * publish, a redelivered message).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
