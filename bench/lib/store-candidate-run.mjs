/**
 * The `stores alone` part of scenario `embedded`: each candidate of `--embedded-candidates` runs
 * bench/lib/store-candidate.mjs in a process of its own (on `--embedded-core`), on an empty dir, at `embeddedRate`
 * messages/s for `embeddedSeconds`; returns { [candidate]: figures }.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, start, tmpDir } from './procs.mjs';

/**
 * Where the node (and each candidate) runs: every core by default (`--embedded-core all`), because the SQLite
 * store's worker thread exists to use a core the event loop is not on; pinned to one core (`--embedded-core 0`),
 * the worker and the event loop share it and the scheduler's time slices show as stalls.
 */
export const embeddedCore = (o) => (o.embeddedCore === 'all' ? undefined : Number(o.embeddedCore));

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'store-candidate.mjs');

export async function candidateFigures(o) {
  const out = {};
  for (const candidate of o.embeddedCandidates.split(',').filter(Boolean)) {
    log(`store alone: ${candidate}`);
    const dir = join(tmpDir(`sb-bench-candidate-${candidate}-`), 'data');
    const child = start(`store ${candidate}`, process.execPath, [SCRIPT, candidate, dir, String(o.embeddedRate), String(o.embeddedSeconds)], {
      core: embeddedCore(o),
    });
    const code = await new Promise((r) => child.once('exit', r));
    const line = child.out
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('{'));
    if (code !== 0 || line === undefined) throw new Error(`store candidate ${candidate} failed (${code}): ${child.out.slice(-1500)}`);
    out[candidate] = JSON.parse(line);
  }
  return out;
}
