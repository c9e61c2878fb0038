// The browser bundle size of @switchboard/client (run by `npm test` after the build; `npm run size`): esbuild
// bundles everything the package exports (`export * from '@switchboard/client'`, resolved through the
// workspace link and the package's exports map, so it measures packages/client/dist as published), minified,
// ESM, es2020, for the browser; the output is gzipped at level 9. Fails when the gzipped size is over
// packages/client/size-budget.json or when the bundle contains anything from outside the package.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const budget = JSON.parse(readFileSync(join(root, 'packages/client/size-budget.json'), 'utf8'));
const result = await build({
  stdin: { contents: "export * from '@switchboard/client';", resolveDir: root, sourcefile: 'entry.js', loader: 'js' },
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  write: false,
  metafile: true,
  absWorkingDir: root,
  logLevel: 'error',
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
const foreign = Object.keys(result.metafile.inputs).filter((p) => p !== 'entry.js' && !p.startsWith('packages/client/dist/'));
const fmt = (n) => n.toLocaleString('en-US');
console.log(
  `@switchboard/client browser bundle (esbuild minify, esm, es2020): ${fmt(code.length)} B minified, ` +
    `${fmt(gzipped)} B min+gzip (level 9); budget ${fmt(budget.gzipBytes)} B`,
);
let failed = false;
if (foreign.length > 0) {
  console.error(`the client bundle contains files from outside packages/client/dist: ${foreign.join(', ')}`);
  failed = true;
}
if (gzipped > budget.gzipBytes) {
  console.error(`over budget by ${fmt(gzipped - budget.gzipBytes)} B: make it smaller, or raise packages/client/size-budget.json in a commit that says why`);
  failed = true;
}
process.exit(failed ? 1 : 0);
