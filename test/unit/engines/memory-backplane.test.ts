/** Behaviour of the in-process backplane beyond the shared Backplane contract. */
import { describe, expect, it } from 'vitest';
import { MemoryBackplane, MemoryBus } from '../../../src/engines/backplane/memory.js';
import { waitFor } from '../../helpers/wait.js';

const enc = new TextEncoder();

describe('MemoryBackplane', () => {
  it('keeps delivering when a handler throws, and reports the error', async () => {
    const errors: string[] = [];
    const bus = new MemoryBus({ onHandlerError: (error, subject) => errors.push(`${subject}:${String(error)}`) });
    const node = new MemoryBackplane(bus);
    const got: number[] = [];
    await node.subscribe('s', () => {
      throw new Error('boom');
    });
    await node.subscribe('s', (p) => got.push(p[0]!));
    await node.publish('s', new Uint8Array([1]));
    await node.publish('s', new Uint8Array([2]));
    await waitFor(() => got.length === 2, 1_000);
    expect(got).toEqual([1, 2]);
    expect(errors).toEqual(['s:Error: boom', 's:Error: boom']);
    await node.close();
  });

  it('delivers asynchronously, and stops at once when a handler unsubscribes', async () => {
    const node = new MemoryBackplane();
    const got: string[] = [];
    const sub = await node.subscribe('s', (p) => {
      got.push(new TextDecoder().decode(p));
      void sub.unsubscribe();
    });
    const sends = [node.publish('s', enc.encode('a')), node.publish('s', enc.encode('b'))];
    expect(got).toEqual([]); // not delivered synchronously inside publish
    await Promise.all(sends);
    await waitFor(() => got.length >= 1, 1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(got).toEqual(['a']);
  });

  it('holds interest only while subscribed: close and unsubscribe remove it from the bus', async () => {
    const bus = new MemoryBus();
    const a = new MemoryBackplane(bus);
    const b = new MemoryBackplane(bus);
    const sub = await a.subscribe('room.x', () => undefined);
    await a.subscribe('room.y', () => undefined);
    await b.subscribe('room.x', () => undefined);
    expect(bus.interest('room.x')).toBe(2);
    await sub.unsubscribe();
    expect(bus.interest('room.x')).toBe(1);
    await a.close();
    expect(bus.interest('room.y')).toBe(0);
    await b.close();
    expect(bus.interest('room.x')).toBe(0);
  });

  it('rejects subscribe during an outage and after close', async () => {
    const bus = new MemoryBus();
    const node = new MemoryBackplane(bus);
    bus.fail('maintenance');
    expect(node.health()).toEqual({ ok: false, detail: 'maintenance' });
    await expect(node.subscribe('s', () => undefined)).rejects.toThrow(/maintenance/);
    bus.recover();
    expect(node.health()).toEqual({ ok: true });
    await node.close();
    await expect(node.subscribe('s', () => undefined)).rejects.toThrow(/closed/);
  });
});
