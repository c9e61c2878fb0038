/**
 * @switchboard/backend stays a NATS-only package: it declares only @nats-io/* dependencies, and its build
 * (packages/backend/dist, made by `npm run build`) imports nothing else but Node built-ins and its own files.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const PKG = fileURLToPath(new URL('../../packages/backend/', import.meta.url));

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsFiles(join(dir, e.name)) : e.name.endsWith('.js') || e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

describe('@switchboard/backend', () => {
  it('depends only on @nats-io/*', () => {
    const manifest = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const deps = Object.keys(manifest.dependencies ?? {});
    expect(deps.length).toBeGreaterThan(0);
    for (const d of deps) expect(d).toMatch(/^@nats-io\//);
  });

  it('its build imports only Node built-ins, @nats-io/* and its own files', () => {
    const dist = join(PKG, 'dist');
    if (!existsSync(join(dist, 'backend/index.js'))) throw new Error('packages/backend/dist is missing: run `npm run build` first');
    const specifiers = new Set<string>();
    for (const f of jsFiles(dist)) {
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) specifiers.add(m[1]!);
    }
    const outside = [...specifiers].filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !s.startsWith('@nats-io/'));
    expect(outside).toEqual([]);
    expect([...specifiers].some((s) => s.startsWith('@nats-io/'))).toBe(true);
  });
});
