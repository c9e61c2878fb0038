/**
 * Per-room ordering and dedupe. Holds the position of the last message handed to the app and turns
 * whatever arrives (live, recovered, or fetched from history, in any order, possibly twice) into a
 * strictly increasing run of seqs, each once:
 * - seq ≤ position: dropped (already delivered);
 * - seq = position + 1: delivered, followed by every held message that is now next in line;
 * - seq > position + 1: held (at most `max`; beyond that it is dropped, but remembered as seen so
 *   `missing()` still covers it and the caller fetches it from history).
 * A message of another epoch is not delivered: `offer` reports it, and the caller resets the position.
 */
import type { Message, Position } from './types.js';

export interface OfferResult {
  /** Messages to hand to the app now, in order. The position already points past them. */
  deliver: Message[];
  /** The message belongs to another epoch: nothing was delivered; reset, then offer it again. */
  epochChanged: boolean;
}

export class ReorderBuffer {
  private pos: Position | null = null;
  private readonly held = new Map<number, Message>();
  /** Highest seq seen in the current epoch (held, dropped for lack of space, or delivered). */
  private highest = 0;
  /** Seqs up to this were conflated or skipped by the server (`skip`): the next message after the position may jump. */
  private skipTo = 0;

  constructor(private readonly max: number) {}

  get position(): Position | null {
    return this.pos === null ? null : { ...this.pos };
  }

  /** Messages held out of order. */
  get heldCount(): number {
    return this.held.size;
  }

  /** The buffer holds `max` messages: fetch the gap now rather than wait. */
  get full(): boolean {
    return this.held.size >= this.max;
  }

  /**
   * Continues from `p` (a join, a reset): drops held messages at or below it or of another epoch; returns
   * held messages that are now next in line.
   */
  setPosition(p: Position): Message[] {
    if (this.pos === null || this.pos.epoch !== p.epoch) {
      this.held.clear();
      this.highest = p.seq;
    }
    this.skipTo = 0;
    this.pos = { seq: p.seq, epoch: p.epoch };
    for (const seq of [...this.held.keys()]) if (seq <= p.seq) this.held.delete(seq);
    this.highest = Math.max(this.highest, p.seq);
    return this.drain();
  }

  offer(m: Message): OfferResult {
    const pos = this.pos;
    if (pos === null) return { deliver: [], epochChanged: false }; // not joined: nothing to order against
    if (m.epoch !== pos.epoch) return { deliver: [], epochChanged: true };
    if (m.seq <= pos.seq) return { deliver: [], epochChanged: false };
    this.highest = Math.max(this.highest, m.seq);
    if (m.seq === pos.seq + 1 || m.seq <= this.skipTo + 1) {
      this.held.delete(m.seq);
      this.pos = { seq: m.seq, epoch: pos.epoch };
      return { deliver: [m, ...this.drain()], epochChanged: false };
    }
    if (this.held.size < this.max || this.held.has(m.seq)) this.held.set(m.seq, m);
    return { deliver: [], epochChanged: false };
  }

  /** The range to fetch when there is a gap: seqs after `after` up to `upTo` inclusive; null when none. */
  missing(): { after: number; upTo: number } | null {
    if (this.pos === null || this.highest <= this.pos.seq) return null;
    return { after: this.pos.seq, upTo: this.highest };
  }

  /**
   * Gives up on the gap right after the position (history does not have it): jumps to just before the
   * first held message (or to the highest seen) and returns what is then deliverable.
   */
  skipGap(): { position: Position; deliver: Message[] } {
    if (this.pos === null) throw new Error('skipGap without a position');
    const first = Math.min(...this.held.keys());
    const to = Number.isFinite(first) ? first - 1 : this.highest;
    this.pos = { seq: Math.max(this.pos.seq, to), epoch: this.pos.epoch };
    return { position: { ...this.pos }, deliver: this.drain() };
  }

  /**
   * The server will not send seqs up to `to` that are not yet delivered (a `catchup` in a conflate room: only each
   * key's newest follows; `skipped` in a drop room): messages up to `to` + 1 are delivered as they come, in order.
   */
  skip(to: number): void {
    this.skipTo = to;
  }

  /** Forgets held messages (the connection dropped: the rejoin recovers everything after the position). */
  clearHeld(): void {
    this.held.clear();
    if (this.pos !== null) this.highest = this.pos.seq;
  }

  private drain(): Message[] {
    const out: Message[] = [];
    if (this.pos === null) return out;
    for (;;) {
      const next = this.held.get(this.pos.seq + 1);
      if (next === undefined) return out;
      this.held.delete(next.seq);
      this.pos = { seq: next.seq, epoch: this.pos.epoch };
      out.push(next);
    }
  }
}
