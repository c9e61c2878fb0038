/** Service topics (`<service>.<name>`) and their NATS subjects, shared by gateways and the backend SDK. */
import { describe, expect, it } from 'vitest';
import { coreSubject, deadLetterSubject, durableSubject, parseTopic, queueGroup, streamName } from '../../src/backend/wire.js';

describe('parseTopic', () => {
  it('splits a valid topic into service and handler name', () => {
    expect(parseTopic('orders.create')).toEqual({ service: 'orders', name: 'create' });
    expect(parseTopic('billing_v2.invoice.Paid-1')).toEqual({ service: 'billing_v2', name: 'invoice.Paid-1' });
  });

  it('refuses topics that would not be single NATS tokens or could reach other subjects', () => {
    for (const bad of [
      'orders',
      '.create',
      'orders.',
      'Orders.create',
      'orders.*',
      'orders.>',
      'orders.a b',
      'orders..x',
      'a.b.c.d.e.f',
      `${'x'.repeat(65)}.y`,
      'ord ers.x',
    ]) {
      expect(parseTopic(bad), bad).toBeNull();
    }
  });

  it('maps a service onto its subjects, queue group and stream', () => {
    expect(coreSubject('orders', 'create')).toBe('svc.orders.create');
    expect(durableSubject('orders', 'create')).toBe('sbq.orders.create');
    expect(deadLetterSubject('orders', 'create')).toBe('sbdlq.orders.create');
    expect(queueGroup('orders')).toBe('svc.orders');
    expect(streamName('orders')).toBe('SB_SVC_orders');
  });
});
