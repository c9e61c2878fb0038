/** Admission: token bucket on an injected clock, connection ceiling, draining, jittered Retry-After. */
import { describe, expect, it } from 'vitest';
import { Admission, type AdmissionOptions } from '../../src/gateway/admission.js';

const base: AdmissionOptions = { ratePerSec: 10, burst: 3, maxConnections: 100, retryAfterMinS: 1, retryAfterMaxS: 10 };

function clocked(options: Partial<AdmissionOptions> = {}): { admission: Admission; advance(ms: number): void } {
  let t = 1_000_000;
  const admission = new Admission({ ...base, ...options }, () => t);
  return { admission, advance: (ms) => (t += ms) };
}

describe('Admission token bucket', () => {
  it('admits a full burst at once, then refuses for rate', () => {
    const { admission } = clocked();
    expect([1, 2, 3].map(() => admission.tryAdmit(0))).toEqual(['admitted', 'admitted', 'admitted']);
    expect(admission.tryAdmit(0)).toBe('refused_rate');
    expect(admission.tryAdmit(0)).toBe('refused_rate');
  });

  it('refills at ratePerSec', () => {
    const { admission, advance } = clocked();
    for (let i = 0; i < 3; i++) admission.tryAdmit(0);
    advance(50); // half a token at 10/s
    expect(admission.tryAdmit(0)).toBe('refused_rate');
    advance(50); // now a whole token
    expect(admission.tryAdmit(0)).toBe('admitted');
    expect(admission.tryAdmit(0)).toBe('refused_rate');
    advance(250); // 2.5 tokens
    expect(admission.tryAdmit(0)).toBe('admitted');
    expect(admission.tryAdmit(0)).toBe('admitted');
    expect(admission.tryAdmit(0)).toBe('refused_rate');
  });

  it('sustains the configured rate over time', () => {
    // Polled every 50 ms at 10/s: half a token per poll (exact in floating point).
    const { admission, advance } = clocked({ ratePerSec: 10, burst: 1 });
    const admittedAt: number[] = [];
    for (let ms = 0; ms < 10_000; ms += 50) {
      if (admission.tryAdmit(0) === 'admitted') admittedAt.push(ms);
      advance(50);
    }
    // 1 from the initial burst + 10/s for 10 s, the last refill landing after the loop.
    expect(admittedAt).toHaveLength(100);
    expect(admittedAt.slice(0, 4)).toEqual([0, 100, 200, 300]);
  });

  it('never holds more than burst tokens, however long it was idle', () => {
    const { admission, advance } = clocked();
    advance(3_600_000);
    const results = Array.from({ length: 5 }, () => admission.tryAdmit(0));
    expect(results).toEqual(['admitted', 'admitted', 'admitted', 'refused_rate', 'refused_rate']);
  });

  it('refuses at maxConnections without spending a token', () => {
    const { admission } = clocked({ maxConnections: 2 });
    expect(admission.tryAdmit(2)).toBe('refused_max');
    expect(admission.tryAdmit(5)).toBe('refused_max');
    expect(admission.tryAdmit(1)).toBe('admitted');
    expect(admission.tryAdmit(1)).toBe('admitted');
    expect(admission.tryAdmit(1)).toBe('admitted');
    expect(admission.tryAdmit(1)).toBe('refused_rate');
  });

  it('refuses everything while draining, before any other check', () => {
    const { admission } = clocked({ maxConnections: 1 });
    admission.draining = true;
    expect(admission.tryAdmit(0)).toBe('refused_draining');
    expect(admission.tryAdmit(10)).toBe('refused_draining');
    admission.draining = false;
    // Draining did not spend tokens.
    expect([1, 2, 3].map(() => admission.tryAdmit(0))).toEqual(['admitted', 'admitted', 'admitted']);
  });
});

describe('Admission Retry-After', () => {
  it('draws whole seconds uniformly within [min, max], not a constant', () => {
    const { admission } = clocked({ retryAfterMinS: 2, retryAfterMaxS: 7 });
    const draws = Array.from({ length: 6_000 }, () => admission.retryAfterS());
    expect(draws.every((v) => Number.isInteger(v))).toBe(true);
    expect(Math.min(...draws)).toBe(2);
    expect(Math.max(...draws)).toBe(7);
    const counts = new Map<number, number>();
    for (const v of draws) counts.set(v, (counts.get(v) ?? 0) + 1);
    // Every value in the range occurs, the bounds included, roughly equally often (expected 1000 each).
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7]);
    for (const c of counts.values()) {
      expect(c).toBeGreaterThan(800);
      expect(c).toBeLessThan(1200);
    }
  });

  it('is the single value when min equals max', () => {
    const { admission } = clocked({ retryAfterMinS: 5, retryAfterMaxS: 5 });
    for (let i = 0; i < 100; i++) expect(admission.retryAfterS()).toBe(5);
  });
});
