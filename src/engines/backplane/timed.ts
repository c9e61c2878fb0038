/**
 * Measures broker latency: wraps a Backplane so that every `publish` records how long the broker took to
 * confirm it (NATS: the shared flush; Redis: the PUBLISH reply; memory: ~0). Behaviour is otherwise the
 * wrapped backplane's, unchanged (same contract, same errors).
 */
import type { Backplane, BackplaneSubscription } from './backplane.js';

export class TimedBackplane implements Backplane {
  constructor(
    private readonly inner: Backplane,
    private readonly observe: (seconds: number) => void,
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  async publish(subject: string, payload: Uint8Array): Promise<void> {
    const t0 = performance.now();
    await this.inner.publish(subject, payload);
    this.observe((performance.now() - t0) / 1000);
  }

  subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<BackplaneSubscription> {
    return this.inner.subscribe(subject, handler);
  }

  health(): { ok: boolean; detail?: string } {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
