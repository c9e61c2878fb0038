/**
 * The benchmark harness's own counting and process ownership (not a benchmark: no figure is asserted):
 * percentiles, loss / duplicate / reordering detection, late vs lost deliveries, a failed scenario stopping
 * every process it started, and a tiny real hot-room run whose delivery count is known exactly, against
 * the raw `ws` floor, Socket.IO and a Switchboard node (dist build, as the harness uses it).
 */
import { afterAll, describe, expect, it } from 'vitest';

// The harness is plain ESM JavaScript; imported through a variable so the typecheck does not need types for it.
const lib = (name: string): string => new URL(`../../bench/lib/${name}`, import.meta.url).href;
const { percentiles, MemberSeqs, SeqTracker, deliveryTotals } = await import(lib('stats.mjs'));
const { openMembers, closeLoad, spawnLoad } = await import(lib('load.mjs'));
const { drainUntilSettled, measureWindow, openPublisher } = await import(lib('measure.mjs'));
const { startSystem } = await import(lib('systems.mjs'));
const { currentOwner, freePort, stopAll } = await import(lib('procs.mjs'));
const { runScenario } = await import(lib('scenario.mjs'));

/** True when no process has this pid any more (stopped and reaped). */
const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
};

afterAll(async () => {
  await stopAll();
});

describe('harness counting', () => {
  it('percentiles are nearest-rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100, unsorted
    expect(percentiles(xs, [50, 99])).toEqual({ p50: 50, p99: 99, max: 100, n: 100 });
    expect(percentiles([7], [50, 99])).toEqual({ p50: 7, p99: 7, max: 7, n: 1 });
    expect(percentiles([], [50])).toEqual({ p50: null, max: null, n: 0 });
  });

  it('per-member seq checks count duplicates, reordering and gaps', () => {
    const m = new MemberSeqs(2);
    for (const s of [5, 6, 7, 9, 9, 8, 12]) m.add(0, s); // first seq 5 is not a gap
    for (const s of [1, 2, 3]) m.add(1, s);
    expect(m.summary()).toEqual({ dupsOrReordered: 2, gaps: 2, gapSeqs: 3 });
  });

  it('the recovery tracker finds missing seqs and duplicates', () => {
    const t = new SeqTracker(3);
    for (const s of [3, 4, 4, 6, 5, 8]) t.add(s);
    expect(t.summary(9)).toEqual({ received: 6, unique: 5, dups: 1, outOfOrder: 1, missing: 2 }); // 7 and 9
  });

  it('delivery totals compare with publishes × members', () => {
    expect(deliveryTotals([{ total: 30 }, { total: 28 }], 20, 3)).toEqual({ delivered: 58, expected: 60, inWindow: 0, late: 58, lost: 2, extra: 0 });
  });

  it('delivery totals keep late apart from lost, and count loss per member', () => {
    // 3 members × 20 messages: 50 arrived in the window, 8 after it; one member has a duplicate, another lacks 3.
    const parts = [
      { total: 30, inWindow: 25, short: 0, over: 1 },
      { total: 28, inWindow: 25, short: 3, over: 0 },
    ];
    expect(deliveryTotals(parts, 20, 3)).toEqual({ delivered: 58, expected: 60, inWindow: 50, late: 8, lost: 3, extra: 1 });
  });

  it('the drain waits through a stall shorter than its quiet time, so queued deliveries are late, not lost', async () => {
    // Deliveries arrive in bursts 300 ms apart: a stall shorter than the quiet time does not end the drain.
    let total = 0;
    const read = async () => {
      if (total < 100) total += 20;
      return [{ total, short: 100 - total }];
    };
    const slow = { quietMs: 1000, maxMs: 10_000, pollMs: 300 };
    const done = await drainUntilSettled(read, slow);
    expect(done.settled).toBe('complete');
    expect(done.stats[0].short).toBe(0);
    // Nothing more ever arrives: quiet after quietMs, what is still lacking is lost.
    const stuck = await drainUntilSettled(async () => [{ total: 90, short: 10 }], { quietMs: 200, maxMs: 10_000, pollMs: 20 });
    expect(stuck.settled).toBe('quiet');
    // Still moving but never complete: the deadline bounds the wait.
    let n = 0;
    const moving = await drainUntilSettled(async () => [{ total: ++n, short: 5 }], { quietMs: 200, maxMs: 300, pollMs: 20 });
    expect(moving.settled).toBe('deadline');
  });
});

describe.each(['floor', 'socketio', 'switchboard'])('a tiny hot-room run on %s', (kind) => {
  it('counts exactly acked publishes × members, with no loss, duplicate or gap', async () => {
    const sys = await startSystem(kind, kind === 'switchboard' ? { extra: ['--admission-rate', '10000', '--admission-burst', '10000'] } : {});
    const common = { proto: sys.proto, port: sys.port, room: 'tiny', sampleEvery: 1, concurrency: 10 };
    const opened = await openMembers({ n: 12, procs: 2, ...common });
    const pub = await openPublisher({ ...common, mode: 'rate', rate: 40 });
    try {
      expect(opened.joined).toBe(12);
      const w = await measureWindow({ gens: opened.gens, publishers: [pub], members: 12, durationMs: 1000, serverPids: sys.pids, drainMaxMs: 20000 });
      expect(w.publishErrors).toBe(0);
      expect(w.acked).toBe(w.published);
      expect(w.acked).toBeGreaterThanOrEqual(20);
      expect(w.delivered).toBe(w.acked * 12);
      expect(w.lost).toBe(0);
      expect(w.extra).toBe(0);
      expect(w.seq).toEqual({ dupsOrReordered: 0, gaps: 0, gapSeqs: 0 });
      expect(w.deliveriesInWindow).toBeLessThanOrEqual(w.delivered);
      expect(w.inWindow + w.late).toBe(w.delivered);
      expect(w.settled).toBe('complete');
      // Every member is sampled: one latency per member per publish sent inside the window.
      expect(w.latencyMs.n).toBe(w.acked * 12);
    } finally {
      await closeLoad([...opened.gens, pub]);
      await sys.stop();
    }
  }, 120_000);
});

describe('a scenario that fails', () => {
  it('stops every process it started (server and load generators) and is reported as failed', async () => {
    const result = { errors: [] as string[] } as { errors: string[]; failed?: { scenario: string; error: string; stopped: { name: string; pid: number }[] }[] };
    let pids: number[] = [];
    const value = await runScenario(result, 'forced', async () => {
      const sys = await startSystem('floor');
      for (let k = 0; k < 3; k++) spawnLoad({ role: 'members', n: 20, proto: 'sb', port: sys.port, room: 'r', userPrefix: `f${k}-` });
      pids = currentOwner().livePids();
      throw new Error('forced failure after spawning load generators');
    });
    expect(value).toBeNull();
    expect(pids).toHaveLength(4); // the floor server and 3 load generators
    for (const pid of pids) expect(gone(pid)).toBe(true);
    expect(result.failed).toHaveLength(1);
    const failed = result.failed?.[0];
    expect(failed?.error).toBe('forced failure after spawning load generators');
    expect(failed?.stopped.map((p) => p.pid).sort()).toEqual([...pids].sort());
    expect(result.errors[0]).toMatch(/^forced FAILED: forced failure .*stopped 4 process\(es\) it left running: floor \(pid \d+\), load members/);
  }, 60_000);

  it('stops the load generators of an openMembers that timed out before handing them back', async () => {
    const result = { errors: [] as string[] };
    let pids: number[] = [];
    const port = await freePort(); // nothing listens there: the members never join
    const value = await runScenario(result, 'members-timeout', async () => {
      const opening = openMembers({ n: 30, procs: 3, proto: 'sb', port, room: 'r', timeoutMs: 1500 });
      pids = currentOwner().livePids();
      await opening;
    });
    expect(value).toBeNull();
    expect(pids).toHaveLength(3);
    for (const pid of pids) expect(gone(pid)).toBe(true);
    expect(result.errors[0]).toMatch(/^members-timeout FAILED: timeout \(1500 ms\) waiting for members ready/);
  }, 60_000);
});

describe('late deliveries at small scale', () => {
  it('a member process paused across the end of the window gets its messages late, not lost', async () => {
    const sys = await startSystem('floor');
    const common = { proto: sys.proto, port: sys.port, room: 'late', sampleEvery: 1, concurrency: 10 };
    const opened = await openMembers({ n: 12, procs: 2, ...common });
    const pub = await openPublisher({ ...common, mode: 'rate', rate: 40 });
    const paused = opened.gens[0];
    // Paused from inside the window until well after it ends: its members read their messages late.
    const pause = setTimeout(() => process.kill(paused.pid, 'SIGSTOP'), 700);
    const resume = setTimeout(() => process.kill(paused.pid, 'SIGCONT'), 3500);
    try {
      const w = await measureWindow({ gens: opened.gens, publishers: [pub], members: 12, durationMs: 1000, serverPids: sys.pids, drainMaxMs: 20000 });
      expect(w.acked).toBeGreaterThanOrEqual(20);
      expect(w.late).toBeGreaterThan(0);
      expect(w.lost).toBe(0);
      expect(w.delivered).toBe(w.acked * 12);
      expect(w.inWindow + w.late).toBe(w.delivered);
      expect(w.settled).toBe('complete');
    } finally {
      clearTimeout(pause);
      clearTimeout(resume);
      process.kill(paused.pid, 'SIGCONT');
      await closeLoad([...opened.gens, pub]);
      await sys.stop();
    }
  }, 60_000);
});
