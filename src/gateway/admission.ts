/**
 * Admission control for new WebSocket connections: a token bucket (rate per second, burst) and a
 * ceiling on open connections. Refused upgrades get HTTP 503 with a jittered Retry-After, so clients
 * refused together do not come back together.
 */
export type AdmissionResult = 'admitted' | 'refused_rate' | 'refused_max' | 'refused_draining';

export interface AdmissionOptions {
  ratePerSec: number;
  burst: number;
  maxConnections: number;
  retryAfterMinS: number;
  retryAfterMaxS: number;
}

export class Admission {
  private tokens: number;
  private last: number;
  draining = false;

  constructor(
    private readonly options: AdmissionOptions,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = options.burst;
    this.last = this.now();
  }

  tryAdmit(openConnections: number): AdmissionResult {
    if (this.draining) return 'refused_draining';
    if (openConnections >= this.options.maxConnections) return 'refused_max';
    const t = this.now();
    this.tokens = Math.min(this.options.burst, this.tokens + ((t - this.last) / 1000) * this.options.ratePerSec);
    this.last = t;
    if (this.tokens < 1) return 'refused_rate';
    this.tokens -= 1;
    return 'admitted';
  }

  /** Seconds to put in Retry-After: uniform in [min, max]. */
  retryAfterS(): number {
    const { retryAfterMinS: min, retryAfterMaxS: max } = this.options;
    return min + Math.floor(Math.random() * (max - min + 1));
  }
}
