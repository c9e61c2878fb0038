/**
 * Preloaded into a node process (`node --import bench/lib/loop-stall.mjs …`) by bench/drain-figures.mjs: measures
 * the event loop's stalls from SIGTERM until the process exits, with no change to the build measured. Two views:
 * the longest gap between ticks of a 5 ms interval timer, and perf_hooks' monitorEventLoopDelay (10 ms
 * resolution). At exit it writes `{ fromSigtermMs, longestGapMs, longestGapAtMs, delayMaxMs, delayP99Ms,
 * gapsOver100Ms: [[ms after SIGTERM, gap ms], …] }` to the file named by SB_LOOP_STALL_FILE.
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const file = process.env.SB_LOOP_STALL_FILE;
if (file !== undefined) {
  const h = monitorEventLoopDelay({ resolution: 10 });
  let termAt = null;
  let last = performance.now();
  let longest = 0;
  let longestAt = 0;
  /** [ms after SIGTERM, gap ms] of the gaps over 100 ms (at most 50). */
  const over100 = [];
  const tick = setInterval(() => {
    const now = performance.now();
    if (termAt !== null && now - last > longest) {
      longest = now - last;
      longestAt = last - termAt;
    }
    if (termAt !== null && now - last > 100 && over100.length < 50) over100.push([Math.round(last - termAt), Math.round(now - last)]);
    last = now;
  }, 5);
  tick.unref();
  // A listener beside the CLI's own: both run; this one only starts the measurement.
  process.on('SIGTERM', () => {
    termAt = performance.now();
    last = termAt;
    h.reset();
    h.enable();
  });
  process.on('exit', () => {
    if (termAt === null) return;
    const now = performance.now();
    if (now - last > longest) {
      longest = now - last;
      longestAt = last - termAt;
    }
    h.disable();
    const ms = (ns) => Math.round(ns / 1e5) / 10;
    writeFileSync(
      file,
      JSON.stringify({
        fromSigtermMs: Math.round(now - termAt),
        longestGapMs: Math.round(longest),
        longestGapAtMs: Math.round(longestAt),
        delayMaxMs: ms(h.max),
        delayP99Ms: ms(h.percentile(99)),
        gapsOver100Ms: over100,
      }),
    );
  });
}
