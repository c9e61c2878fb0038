/**
 * The event loop's longest stalls, with and without the time the thread waited for a CPU: on a shared
 * machine a process that is runnable but not running stalls its event loop as surely as its own work does,
 * and only the second kind is the process's doing. A 1 ms interval timer on the main thread measures each gap
 * between its ticks (`wall`) and subtracts how long the thread waited on the run queue meanwhile, from Linux's
 * /proc/self/task/<tid>/schedstat (`own`: its own work, a syscall it blocked in, or its ≤ 1 ms sleep).
 *
 * `ownStallProbe()` keeps the maxima of each wall-clock second, `[[epoch second, wall ms, own ms], …]` (the last
 * 600). It costs about 7 % of a core (the timer and a /proc read every millisecond), too much to run inside the
 * node whose figures the bench reads: bench/lib/store-candidate.mjs runs it beside each candidate store alike.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Starts the probe; `seconds()` returns the per-second maxima so far. */
export function ownStallProbe() {
  let fd = null;
  try {
    fd = openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
  } catch {
    /* not Linux: own = wall */
  }
  const buf = Buffer.alloc(128);
  const waitedNs = () => {
    if (fd === null) return 0;
    const n = readSync(fd, buf, 0, buf.length, 0);
    return Number(buf.toString('latin1', 0, n).split(' ')[1]);
  };
  const buckets = new Map();
  let lastT = performance.now();
  let lastWait = waitedNs();
  const timer = setInterval(() => {
    const t = performance.now();
    const w = waitedNs();
    const wall = t - lastT;
    const own = wall - (w - lastWait) / 1e6;
    const second = Math.floor((performance.timeOrigin + t) / 1000);
    const b = buckets.get(second) ?? [second, 0, 0];
    if (wall > b[1]) b[1] = Math.round(wall * 10) / 10;
    if (own > b[2]) b[2] = Math.round(own * 10) / 10;
    buckets.set(second, b);
    if (buckets.size > 600) buckets.delete(buckets.keys().next().value);
    lastT = t;
    lastWait = w;
  }, 1);
  timer.unref();
  return {
    seconds: () => [...buckets.values()],
    stop: () => {
      clearInterval(timer);
      if (fd !== null) closeSync(fd);
    },
  };
}
