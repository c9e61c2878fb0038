/**
 * Publishes that wait for their room to be joined on a live connection (offline, reconnecting, joining).
 * Bounded: a new publish is refused when `max` are waiting. A publish that was already accepted and comes
 * back (its connection dropped before the ack) is always taken back, in its original order, so the
 * bound never makes the SDK drop a message it accepted.
 */
import type { Json } from '../protocol/wire.js';
import type { SwitchboardClientError } from './errors.js';
import type { PublishResult } from './types.js';

export interface PendingPublish {
  /** Creation order (client-wide), to keep each room's publishes in call order across requeues. */
  readonly order: number;
  readonly room: string;
  readonly data: Json;
  /** Idempotency id, fixed at the first attempt: every retry sends the same one. */
  readonly idem: string;
  /** Event name of the message, if the app gave one. */
  readonly event?: string;
  /** Conflation key of the message, if the app gave one. */
  readonly key?: string;
  /** Retryable failures so far (server errors, timeouts; not disconnects). */
  failures: number;
  resolve(result: PublishResult): void;
  reject(error: SwitchboardClientError): void;
}

export class OfflineQueue {
  private readonly rooms = new Map<string, PendingPublish[]>();
  private count = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.count;
  }

  /** Queues a new publish; false (nothing queued) when the queue is full. */
  add(p: PendingPublish): boolean {
    if (this.count >= this.max) return false;
    this.insert(p);
    return true;
  }

  /** Takes back an accepted publish (disconnect before the ack, retry after an error), whatever the bound. */
  requeue(p: PendingPublish): void {
    this.insert(p);
  }

  /** Removes and returns a room's waiting publishes, oldest first. */
  take(room: string): PendingPublish[] {
    const list = this.rooms.get(room) ?? [];
    this.rooms.delete(room);
    this.count -= list.length;
    return list;
  }

  /** Removes and returns everything (client closed). */
  takeAll(): PendingPublish[] {
    const all = [...this.rooms.values()].flat();
    this.rooms.clear();
    this.count = 0;
    return all;
  }

  private insert(p: PendingPublish): void {
    let list = this.rooms.get(p.room);
    if (list === undefined) {
      list = [];
      this.rooms.set(p.room, list);
    }
    let i = list.length;
    while (i > 0 && list[i - 1]!.order > p.order) i--;
    list.splice(i, 0, p);
    this.count++;
  }
}

/** A random idempotency id (`sb-` + 16 URL-safe characters, 96 random bits), from crypto.getRandomValues when present. */
export function newIdem(): string {
  const bytes = new Uint8Array(16);
  const crypto = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  if (crypto?.getRandomValues !== undefined) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let out = 'sb-';
  for (const b of bytes) out += alphabet[b & 63];
  return out;
}
