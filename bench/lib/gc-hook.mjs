/**
 * Bench-only preload (`node --expose-gc --import ./bench/lib/gc-hook.mjs <server>`): on SIGUSR2 the process
 * runs a full GC twice and writes `{ rss, heapUsed }` to `$BENCH_MEM_DIR/<pid>.json`. It is loaded only by
 * the benchmark's command line, so no server gains an endpoint or a signal handler in normal use, and it
 * is the same hook for Switchboard, Socket.IO and the `ws` floor.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';

const dir = process.env.BENCH_MEM_DIR;
if (dir !== undefined && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    setTimeout(() => {
      globalThis.gc();
      const out = { pid: process.pid, rss: process.memoryUsage().rss, heapUsed: v8.getHeapStatistics().used_heap_size, at: Date.now() };
      writeFileSync(join(dir, `${process.pid}.json.tmp`), JSON.stringify(out));
      // Rename so the reader never sees a half-written file.
      renameSync(join(dir, `${process.pid}.json.tmp`), join(dir, `${process.pid}.json`));
    }, 200);
  });
}
