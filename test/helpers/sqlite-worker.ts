/**
 * The SQLite store's worker script for tests that run from the TypeScript sources: Node 20 cannot start a
 * worker from a `.ts` file, so sqlite-worker.ts is bundled (its own imports inlined, packages left to
 * node_modules) into node_modules/.cache/switchboard-tests/ and that file's URL is passed as `workerUrl`.
 * Built once per test process, from the current sources (never a stale dist/).
 */
import { mkdirSync, renameSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let built: Promise<URL> | undefined;

export function sqliteWorkerUrl(): Promise<URL> {
  built ??= (async () => {
    const dir = `${ROOT}node_modules/.cache/switchboard-tests`;
    mkdirSync(dir, { recursive: true });
    const out = `${dir}/sqlite-worker.mjs`;
    // Several test processes may build at once: each writes its own file, then renames it into place.
    const tmp = `${out}.${process.pid}.tmp.mjs`;
    await build({
      entryPoints: [`${ROOT}src/engines/messagestore/sqlite-worker.ts`],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outfile: tmp,
      logLevel: 'error',
    });
    renameSync(tmp, out);
    return pathToFileURL(out);
  })();
  return built;
}
