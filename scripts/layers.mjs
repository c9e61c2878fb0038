#!/usr/bin/env node
/**
 * The layer rule of src/ (docs/architecture.md §2): folders are ordered from the bottom up, and a file may
 * import only from its own folder or from a folder of a lower layer. Folders of the same layer do not
 * import each other. `node scripts/layers.mjs [root]` prints every import that breaks the rule, and the
 * size of each folder; it exits 1 when there is a violation. test/unit/layers.test.ts runs it in `npm test`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom first. A folder not listed here is a violation of its own (add it to a layer). */
export const LAYERS = [
  ['util'],
  ['protocol'],
  ['config', 'observability', 'auth', 'connections'],
  ['engines', 'client', 'backend', 'hooks'],
  ['messaging', 'webhooks'],
  ['rooms', 'services'],
  ['gateway', 'http'],
  ['pusher'],
  ['node'],
  ['cli'],
];
/** Files directly in src/ (the package entry points) sit above every folder. */
const TOP = LAYERS.length;

function layerOf(folder) {
  if (folder === '') return TOP;
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i;
}

function walk(dir, out) {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (e.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Imports and re-exports with a relative specifier, static or dynamic; `import type` included. */
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

export function check(root) {
  const src = path.join(root, 'src');
  const files = walk(src, []);
  const violations = [];
  const folders = new Map();
  for (const file of files) {
    const rel = path.relative(src, file);
    const folder = rel.includes(path.sep) ? rel.split(path.sep)[0] : '';
    const f = folders.get(folder) ?? { files: 0, lines: 0 };
    const text = readFileSync(file, 'utf8');
    f.files++;
    f.lines += text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    folders.set(folder, f);
    const from = layerOf(folder);
    if (from < 0) violations.push({ file: rel, target: '', reason: `folder ${folder}/ is in no layer` });
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      const target = path.relative(src, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) {
        violations.push({ file: rel, target: spec, reason: 'imports from outside src/' });
        continue;
      }
      const tFolder = target.includes(path.sep) ? target.split(path.sep)[0] : '';
      if (tFolder === folder) continue;
      const to = layerOf(tFolder);
      if (to >= from) violations.push({ file: rel, target, reason: `${folder || 'src'}/ (layer ${from}) imports ${tFolder || 'src'}/ (layer ${to})` });
    }
  }
  return { violations, folders };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
  const { violations, folders } = check(root);
  let files = 0;
  let lines = 0;
  for (const [name, f] of [...folders].sort()) {
    console.log(`${(name || '(src)').padEnd(14)} ${String(f.files).padStart(4)} files ${String(f.lines).padStart(6)} lines`);
    files += f.files;
    lines += f.lines;
  }
  console.log(`${'total'.padEnd(14)} ${String(files).padStart(4)} files ${String(lines).padStart(6)} lines`);
  for (const v of violations) console.log(`upward: ${v.file} -> ${v.target}: ${v.reason}`);
  console.log(`${violations.length} import(s) break the layer order`);
  process.exit(violations.length > 0 ? 1 : 0);
}
