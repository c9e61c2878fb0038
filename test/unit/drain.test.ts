/**
 * The drain schedule (src/gateway/drain.ts) on a fake clock: notice order and delays, closes when each
 * notice's delay ends, the per-turn bounds (8, 64 when behind, 256 notices), every connection closed
 * exactly once, late arrivals, and the deadline's terminations.
 */
import { describe, expect, it } from 'vitest';
import { DrainSchedule, type DrainClock, type DrainHooks, type DrainOptions, type DrainResult } from '../../src/gateway/drain.js';

interface FakeConn {
  readonly id: number;
  open: boolean;
  /** Already closing for another reason (no notice). */
  closing: boolean;
  /** The socket never completes its close (a peer that does not answer). */
  stuck: boolean;
  notices: { at: number; delayMs: number }[];
  closes: number[];
  terminations: number[];
}

interface Task {
  at: number;
  order: number;
  fn: () => void;
  /** A turn of the schedule (costs `turnCostMs`), not a socket event. */
  turn: boolean;
}

/** A deterministic event loop: tasks run in time order; each task (turn) may cost some time. */
class FakeLoop implements DrainClock {
  t = 0;
  private order = 0;
  private tasks: Task[] = [];
  /** Closes made in each task (filled by the hooks); task 0 is the synchronous start. */
  turns: number[] = [0];
  /** Notices sent in each task. */
  noticesPerTurn: number[] = [0];
  /** Terminations made in each task. */
  terminatedPerTurn: number[] = [0];
  current = 0;

  constructor(private readonly turnCostMs = 0) {}

  now(): number {
    return this.t;
  }

  later(fn: () => void, ms: number): void {
    this.tasks.push({ at: this.t + Math.max(0, ms), order: this.order++, fn, turn: true });
  }

  /** A socket event (free). */
  event(fn: () => void, ms: number): void {
    this.tasks.push({ at: this.t + ms, order: this.order++, fn, turn: false });
  }

  /** Runs until `until()` or no task is left. */
  runUntil(until: () => boolean, maxTasks = 1_000_000): void {
    for (let n = 0; n < maxTasks && !until(); n++) {
      this.tasks.sort((a, b) => a.at - b.at || a.order - b.order);
      const task = this.tasks.shift();
      if (task === undefined) return;
      this.t = Math.max(this.t, task.at);
      this.turns.push(0);
      this.noticesPerTurn.push(0);
      this.terminatedPerTurn.push(0);
      this.current = this.turns.length - 1;
      task.fn();
      if (task.turn) this.t += this.turnCostMs;
    }
  }
}

/** A seeded LCG in [0, 1). */
function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

function conns(n: number, patch: Partial<FakeConn> = {}): FakeConn[] {
  return Array.from({ length: n }, (_, id) => ({ id, open: true, closing: false, stuck: false, notices: [], closes: [], terminations: [], ...patch }));
}

/**
 * Hooks over fake connections: a close completes (the socket is gone) `closeLatencyMs` later unless stuck, and
 * costs `closeCostMs` of the turn's time.
 */
function hooks(loop: FakeLoop, closeLatencyMs = 5, closeCostMs = 0): DrainHooks<FakeConn> {
  return {
    notify: (c, delayMs) => {
      c.notices.push({ at: loop.now(), delayMs });
      loop.noticesPerTurn[loop.current]!++;
    },
    close: (c) => {
      c.closes.push(loop.now());
      loop.turns[loop.current]!++;
      loop.t += closeCostMs;
      if (!c.stuck) loop.event(() => (c.open = false), closeLatencyMs);
    },
    terminate: (c) => {
      c.terminations.push(loop.now());
      loop.terminatedPerTurn[loop.current]!++;
      loop.event(() => (c.open = false), 0);
    },
    isOpen: (c) => c.open,
    canNotify: (c) => !c.closing,
  };
}

function drain(list: FakeConn[], options: Partial<DrainOptions> = {}, turnCostMs = 0, closeLatencyMs = 5, closeCostMs = 0) {
  const loop = new FakeLoop(turnCostMs);
  const schedule = new DrainSchedule(hooks(loop, closeLatencyMs, closeCostMs), { spreadMs: 5_000, timeoutMs: 10_000, random: seeded(7), ...options }, loop);
  let resolvedAt: number | null = null;
  let outcome: DrainResult | null = null;
  void schedule.run(list).then((r) => {
    resolvedAt = loop.now();
    outcome = r;
  });
  const finish = (): number => {
    loop.runUntil(() => schedule.done);
    return loop.now();
  };
  return { loop, schedule, finish, resolved: () => resolvedAt, result: () => outcome };
}

describe('drain schedule', () => {
  it('notices every connection once, closes each once when its own delay ends, at most 8 per turn', async () => {
    const list = conns(2_000);
    const { loop, finish, schedule, result } = drain(list);
    const end = finish();
    await Promise.resolve();
    expect(schedule.done).toBe(true);
    expect(result()).toEqual({ closed: 2_000, terminated: 0, ms: end });
    for (const c of list) {
      expect(c.notices).toHaveLength(1);
      expect(c.closes).toHaveLength(1);
      expect(c.terminations).toEqual([]);
      const { at, delayMs } = c.notices[0]!;
      expect(delayMs).toBeGreaterThanOrEqual(0);
      expect(delayMs).toBeLessThan(5_000);
      // closed when its delay ended (never before), and soon after on an idle loop
      expect(c.closes[0]!).toBeGreaterThanOrEqual(at + delayMs);
      expect(c.closes[0]! - (at + delayMs)).toBeLessThanOrEqual(50);
    }
    expect(Math.max(...loop.turns)).toBeLessThanOrEqual(8);
    // the closes are spread over the window, not made at once
    const closes = list.map((c) => c.closes[0]!);
    expect(Math.max(...closes) - Math.min(...closes)).toBeGreaterThan(4_500);
    expect(end).toBeLessThan(5_200);
  });

  it('sends notices in delay order, in batches of at most 256 per turn, and closes in that order', () => {
    const list = conns(1_000);
    const { loop, finish } = drain(list);
    finish();
    const byNotice = [...list].sort((a, b) => a.notices[0]!.at - b.notices[0]!.at || a.notices[0]!.delayMs - b.notices[0]!.delayMs);
    const delays = byNotice.map((c) => c.notices[0]!.delayMs);
    expect(delays).toEqual([...delays].sort((a, b) => a - b));
    expect(Math.max(...loop.noticesPerTurn)).toBe(256);
    expect(loop.noticesPerTurn.filter((n) => n > 0)).toHaveLength(4);
    const byClose = [...list].sort((a, b) => a.closes[0]! - b.closes[0]!);
    const due = byClose.map((c) => c.notices[0]!.at + c.notices[0]!.delayMs);
    expect(due).toEqual([...due].sort((a, b) => a - b));
  });

  it('a schedule more than 1 s behind (a stalled loop) closes up to 64 per turn and catches up', () => {
    const list = conns(3_000);
    // Every turn costs 20 ms: at 8 closes per turn the node could close 400/s, the schedule asks for 600/s.
    const { loop, finish } = drain(list, { spreadMs: 5_000, timeoutMs: 30_000 }, 20);
    finish();
    expect(Math.max(...loop.turns)).toBeGreaterThan(8);
    expect(Math.max(...loop.turns)).toBeLessThanOrEqual(64);
    for (const c of list) {
      expect(c.closes).toHaveLength(1);
      expect(c.terminations).toEqual([]);
    }
  });

  it('a turn stops closing once it has spent 10 ms, even in catch-up', () => {
    const list = conns(3_000);
    // Each close costs 3 ms: the schedule falls behind (catch-up), but a turn holds the loop for at most ~10 ms.
    const { loop, finish } = drain(list, { spreadMs: 2_000, timeoutMs: 60_000 }, 0, 5, 3);
    finish();
    expect(Math.max(...loop.turns)).toBeLessThanOrEqual(4);
    for (const c of list) expect(c.closes).toHaveLength(1);
  });

  it('terminates what is still open at the deadline, each once, in bounded batches, then resolves', async () => {
    const list = conns(300, { stuck: true });
    const { loop, finish, resolved, result } = drain(list, { spreadMs: 1_000, timeoutMs: 3_000 });
    finish();
    await Promise.resolve();
    expect(resolved()).not.toBeNull();
    expect(result()).toMatchObject({ closed: 300, terminated: 300 });
    expect(resolved()!).toBeGreaterThanOrEqual(3_000);
    for (const c of list) {
      expect(c.closes).toHaveLength(1);
      expect(c.terminations).toHaveLength(1);
      expect(c.terminations[0]!).toBeGreaterThanOrEqual(3_000);
    }
    // 300 terminations in turns of at most 16
    expect(Math.max(...loop.terminatedPerTurn)).toBe(16);
    expect(loop.terminatedPerTurn.filter((n) => n > 0)).toHaveLength(19);
  });

  it('a connection already closing gets no notice and no close; it is waited for, then terminated at the deadline', () => {
    const [closing] = conns(1, { closing: true });
    const others = conns(10);
    const { finish } = drain([closing!, ...others], { spreadMs: 500, timeoutMs: 2_000 });
    const end = finish();
    expect(closing!.notices).toEqual([]);
    expect(closing!.closes).toEqual([]);
    expect(closing!.terminations).toHaveLength(1);
    expect(end).toBeGreaterThanOrEqual(2_000);
    for (const c of others) expect(c.closes).toHaveLength(1);
  });

  it('a connection that arrives during the drain is told and closed on the next turn; after the drain, at once', () => {
    const list = conns(20);
    const { loop, schedule, finish } = drain(list, { spreadMs: 2_000 });
    const [late, later] = conns(2).map((c, i) => ({ ...c, id: 100 + i }));
    loop.later(() => schedule.add(late!), 500);
    finish();
    expect(late!.notices).toHaveLength(1);
    expect(late!.closes).toHaveLength(1);
    expect(late!.closes[0]! - 500).toBeLessThanOrEqual(10);
    schedule.add(later!);
    expect(later!.notices).toHaveLength(1);
    expect(later!.closes).toHaveLength(1);
  });

  it('with no connection it resolves at once', async () => {
    const { finish, resolved } = drain([]);
    expect(finish()).toBe(0);
    await Promise.resolve();
    expect(resolved()).toBe(0);
  });
});
