/**
 * `--workers N`: N gateway processes share one port through Node's cluster module (the primary accepts
 * and hands connections round-robin). Each worker is a full cluster node with its own node id
 * (`<id>-w<i>`), so one machine uses all its cores and spreads its open files over several processes.
 * The primary restarts a worker that dies (after a short delay) and, on SIGTERM/SIGINT, forwards the
 * signal so every worker drains, then exits 0.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../observability/logger.js';

export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

export function runPrimary(count: number, baseNodeId: string, log: Logger): void {
  let stopping = false;
  const spawnWorker = (index: number): void => {
    const worker = cluster.fork({ SWITCHBOARD_NODE_ID: `${baseNodeId}-w${index}`, SWITCHBOARD_WORKERS: '1' });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      log.error({ worker: index, code, signal }, 'worker died; restarting in 1 s');
      setTimeout(() => spawnWorker(index), 1_000).unref();
    });
  };
  for (let i = 0; i < count; i++) spawnWorker(i);
  log.info({ workers: count }, 'workers started');
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining workers');
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    let alive = workers.length;
    if (alive === 0) process.exit(0);
    for (const w of workers) {
      w.on('exit', () => {
        if (--alive === 0) process.exit(0);
      });
      w.process.kill(signal);
    }
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

export const isPrimary = (): boolean => cluster.isPrimary;
