/**
 * The shutdown drain's schedule: every connection gets a reconnect notice with its own random delay in
 * [0, spreadMs) and is closed when that delay ends, a bounded number per event-loop turn, so the node keeps
 * answering HTTP (503 to upgrades and readiness, the API served) while it sheds its clients.
 *
 * - Notices go out in delay order, at most `noticesPerTurn` per turn; a connection's close is due at the
 *   time its notice was sent plus its delay (the SDK counts `reconnectAfterMs` from the notice too).
 * - At most `closesPerTurn` closes per turn (`catchUpClosesPerTurn` when the schedule is more than
 *   `catchUpAfterMs` behind, e.g. on a loaded machine), and no more once the turn has spent `sliceMs` closing;
 *   turns are separated by `setImmediate` while work is due and by a timer (at most `sliceMs`) while it is
 *   not, so I/O (accepts, requests, the clean-up of closed sockets) runs between them.
 * - A connection that arrives during the drain (its handshake was already under way) is told and closed at
 *   once. Each connection is closed (or terminated) at most once.
 * - The drain ends when every connection is gone, or at `timeoutMs`, when what is left is terminated (also in
 *   bounded batches, `terminationsPerTurn`).
 *
 * Time and turns come from a `DrainClock`, so the schedule is unit-tested with a fake clock.
 */

/** What the drain does to one connection; the gateway implements it over its `Connection`s. */
export interface DrainHooks<C> {
  /** Sends `{type:'notice', code:'reconnect', reconnectAfterMs}`. */
  notify(c: C, reconnectAfterMs: number): void;
  /** Flushes and closes with 4001 (shutdown). */
  close(c: C): void;
  /** Drops the socket without a close handshake. */
  terminate(c: C): void;
  /** False once the socket is gone (its close was seen). */
  isOpen(c: C): boolean;
  /** False for a connection already being closed for another reason (it gets no notice; it is waited for). */
  canNotify(c: C): boolean;
}

/** Time and turns. `later(fn, 0)` runs `fn` on the next turn after pending I/O (setImmediate). */
export interface DrainClock {
  now(): number;
  later(fn: () => void, ms: number): void;
}

export interface DrainOptions {
  /** Notice delays are uniform in [0, spreadMs). */
  spreadMs: number;
  /** When what is still open is terminated, ms after the start. */
  timeoutMs: number;
  /** Default 8. */
  closesPerTurn?: number;
  /** Default 64, when the schedule is more than `catchUpAfterMs` behind. */
  catchUpClosesPerTurn?: number;
  /** Default 1000. */
  catchUpAfterMs?: number;
  /** Default 256. */
  noticesPerTurn?: number;
  /** At the deadline, default 16 (each one's clean-up, leaving rooms and presence, follows in the same turn). */
  terminationsPerTurn?: number;
  /** Longest wait between turns, and longest time a turn spends closing, ms (default 10). */
  sliceMs?: number;
  /** [0, 1), default Math.random. */
  random?: () => number;
}

export const realClock: DrainClock = {
  now: () => Date.now(),
  later: (fn, ms) => {
    if (ms <= 0) setImmediate(fn);
    else setTimeout(fn, ms);
  },
};

interface Entry<C> {
  readonly c: C;
  readonly delayMs: number;
  /** When its close is due; set when its notice is sent. */
  dueAt: number;
}

/** What a drain did: connections closed on their schedule (4001), and terminated at the deadline. */
export interface DrainResult {
  closed: number;
  terminated: number;
  ms: number;
}

/** One drain, run once: `run(connections)` resolves when it is over. */
export class DrainSchedule<C> {
  private readonly o: Required<DrainOptions>;
  /** Waiting for their notice, in delay order. */
  private unnoticed: Entry<C>[] = [];
  private nextNotice = 0;
  /** Noticed, waiting for their close, in due order (notices go out in delay order, so due times ascend). */
  private readonly due: Entry<C>[] = [];
  private nextDue = 0;
  /** Arrived during the drain: closed on the next turn. */
  private readonly late: C[] = [];
  /** Every connection of the drain; shrunk to the open ones once every close was sent. */
  private all: C[] = [];
  private startedAt = 0;
  private finished = false;
  private closed = 0;
  private terminated = 0;
  private resolve: ((result: DrainResult) => void) | null = null;

  constructor(
    private readonly hooks: DrainHooks<C>,
    options: DrainOptions,
    private readonly clock: DrainClock = realClock,
  ) {
    this.o = {
      closesPerTurn: 8,
      catchUpClosesPerTurn: 64,
      catchUpAfterMs: 1000,
      noticesPerTurn: 256,
      terminationsPerTurn: 16,
      sliceMs: 10,
      random: Math.random,
      ...options,
    };
  }

  get done(): boolean {
    return this.finished;
  }

  run(connections: Iterable<C>): Promise<DrainResult> {
    this.startedAt = this.clock.now();
    for (const c of connections) {
      this.all.push(c);
      if (this.hooks.canNotify(c)) this.unnoticed.push({ c, delayMs: Math.floor(this.o.random() * this.o.spreadMs), dueAt: 0 });
    }
    this.unnoticed.sort((a, b) => a.delayMs - b.delayMs);
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.turn();
    });
  }

  /** A connection whose handshake completed during the drain: told to go elsewhere and closed on the next turn (at once if the drain is over). */
  add(c: C): void {
    this.hooks.notify(c, Math.floor(this.o.random() * this.o.spreadMs));
    if (this.finished) this.close(c);
    else {
      this.all.push(c);
      this.late.push(c);
    }
  }

  private turn(): void {
    const now = this.clock.now();
    if (now - this.startedAt >= this.o.timeoutMs) return this.terminateRest();
    // Notices (a bounded batch), then the closes that are due (a bounded batch).
    const notices = Math.min(this.unnoticed.length, this.nextNotice + this.o.noticesPerTurn);
    for (; this.nextNotice < notices; this.nextNotice++) {
      const e = this.unnoticed[this.nextNotice]!;
      if (!this.hooks.isOpen(e.c) || !this.hooks.canNotify(e.c)) continue;
      this.hooks.notify(e.c, e.delayMs);
      e.dueAt = now + e.delayMs;
      this.due.push(e);
    }
    if (this.nextNotice === this.unnoticed.length) this.unnoticed = [];
    const head = this.due[this.nextDue];
    const budget = head !== undefined && now - head.dueAt > this.o.catchUpAfterMs ? this.o.catchUpClosesPerTurn : this.o.closesPerTurn;
    let closes = 0;
    while (closes < budget && this.late.length > 0) {
      const c = this.late.shift()!;
      if (this.hooks.isOpen(c)) {
        this.close(c);
        closes++;
      }
    }
    while (closes < budget && this.nextDue < this.due.length && this.due[this.nextDue]!.dueAt <= now) {
      const e = this.due[this.nextDue++]!;
      if (this.hooks.isOpen(e.c)) {
        this.close(e.c);
        closes++;
        // A turn also ends after `sliceMs` of closing (a slow machine, a catch-up batch), whatever the count.
        if (this.clock.now() - now >= this.o.sliceMs) break;
      }
    }
    this.schedule(now);
  }

  private schedule(now: number): void {
    const notified = this.unnoticed.length === 0;
    const closing = this.nextDue < this.due.length || this.late.length > 0;
    if (notified && !closing) {
      this.all = this.all.filter((c) => this.hooks.isOpen(c));
      if (this.all.length === 0) return this.finish();
    }
    const next = this.due[this.nextDue];
    // More work due now: the next turn after pending I/O; otherwise sleep until the next close (at most a slice).
    const busy = !notified || this.late.length > 0 || (next !== undefined && next.dueAt <= now);
    const untilDeadline = this.startedAt + this.o.timeoutMs - now;
    const wait = busy ? 0 : Math.max(1, Math.min(this.o.sliceMs, untilDeadline, next !== undefined ? next.dueAt - now : this.o.sliceMs));
    this.clock.later(() => this.turn(), wait);
  }

  /** The deadline passed: terminate what is still open, a bounded batch per turn. */
  private terminateRest(): void {
    const open = this.all.filter((c) => this.hooks.isOpen(c));
    let i = 0;
    const batch = (): void => {
      const end = Math.min(open.length, i + this.o.terminationsPerTurn);
      for (; i < end; i++) {
        if (!this.hooks.isOpen(open[i]!)) continue;
        this.hooks.terminate(open[i]!);
        this.terminated++;
      }
      if (i < open.length) this.clock.later(batch, 0);
      else this.finish();
    };
    batch();
  }

  private close(c: C): void {
    this.hooks.close(c);
    this.closed++;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.resolve?.({ closed: this.closed, terminated: this.terminated, ms: this.clock.now() - this.startedAt });
  }
}
