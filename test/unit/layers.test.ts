/**
 * The layer rule (docs/architecture.md §2, scripts/layers.mjs): no folder of src/ imports one above it, or
 * one beside it in the same layer. Checked on the real tree, and on a planted tree to show the check bites.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error -- plain ESM script without type declarations
import { check } from '../../scripts/layers.mjs';

interface Violation {
  file: string;
  target: string;
  reason: string;
}
const runCheck = check as (root: string) => { violations: Violation[] };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const planted = mkdtempSync(join(tmpdir(), 'sb-layers-'));

afterAll(() => rmSync(planted, { recursive: true, force: true }));

function plant(files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(planted, 'src', path, '..'), { recursive: true });
    writeFileSync(join(planted, 'src', path), text);
  }
}

describe('layer order', () => {
  it('src/ has no import that runs upward or sideways', () => {
    expect(runCheck(ROOT).violations).toEqual([]);
  });

  it('the check reports an upward import, a sideways one, a type-only one and a folder in no layer', () => {
    plant({
      'engines/a.ts': "import { x } from '../gateway/g.js';\nexport const a = x;\n",
      'gateway/g.ts': "import type { H } from '../http/h.js';\nexport const x: H = 1;\n",
      'http/h.ts': 'export type H = number;\n',
      'rooms/r.ts': "export { a } from '../engines/a.js';\n",
      'stray/s.ts': 'export const s = 1;\n',
    });
    const found = runCheck(planted).violations.map((v) => `${v.file} ${v.target}`.trim());
    expect(found.sort()).toEqual(['engines/a.ts gateway/g.js', 'gateway/g.ts http/h.js', 'stray/s.ts'].sort());
  });
});
