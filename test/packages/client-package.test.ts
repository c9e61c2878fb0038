/**
 * @switchboard/client as an app gets it: `npm pack` of packages/client (built by `npm run build`), installed
 * from the tarball into an empty folder, must bring no other package (no server dependency), import in Node
 * through its exports map, type-check against its own declarations alone, and bundle for the browser with
 * esbuild from nothing but its own files.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = join(ROOT, 'packages/client');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** The environment without the npm_* variables of an enclosing `npm test`, so the nested npm acts on its own folder. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
const run = (cmd: string, args: string[], cwd: string): string => execFileSync(cmd, args, { cwd, env, encoding: 'utf8' });

let dir = '';
let app = '';

beforeAll(() => {
  if (!existsSync(join(PKG, 'dist/client/index.js'))) throw new Error('packages/client/dist is missing: run `npm run build` first');
  dir = mkdtempSync(join(tmpdir(), 'sb-client-pkg-'));
  const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], PKG)) as { filename: string }[];
  const tarball = join(dir, packed[0]!.filename);
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'probe-app', private: true, type: 'module' }));
  run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], app);
}, 120_000);

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('@switchboard/client packed and installed into an empty folder', () => {
  it('installs alone: no dependency, nothing of the server', () => {
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    expect(Object.keys(lock.packages).sort()).toEqual(['', 'node_modules/@switchboard/client']);
    expect(readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'))).toEqual(['@switchboard']);
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/@switchboard/client/package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['dependencies']).toBeUndefined();
    expect(manifest['peerDependencies']).toBeUndefined();
  });

  it('imports in Node through its exports map', () => {
    const out = run(
      'node',
      [
        '--input-type=module',
        '-e',
        "import { connect, SwitchboardClientError, backoffDelay } from '@switchboard/client'; " +
          'console.log(typeof connect, typeof SwitchboardClientError, backoffDelay(1, { minMs: 0, maxMs: 0, factor: 2 }))',
      ],
      app,
    );
    expect(out.trim()).toBe('function function 0');
  });

  it('type-checks an app against its declarations alone (no Node types, no server types)', () => {
    writeFileSync(
      join(app, 'main.ts'),
      [
        "import { connect, SwitchboardClientError, type Message, type StateChange } from '@switchboard/client';",
        "const client = connect('wss://chat.example.com/ws', { getToken: async () => 'jwt' });",
        "client.on('state', (e: StateChange) => console.log(e.from, e.to, e.error instanceof SwitchboardClientError));",
        "const room = client.room('lobby');",
        "room.on('message', (m: Message) => console.log(m.seq, m.from, m.data));",
        "export const ack: Promise<{ seq: number; epoch: string; duplicate: boolean }> = room.publish({ text: 'hi' });",
      ].join('\n'),
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022', 'DOM'],
          types: [],
          skipLibCheck: false,
        },
        files: ['main.ts'],
      }),
    );
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
  }, 90_000);

  it('bundles for the browser with esbuild from its own files only', async () => {
    writeFileSync(
      join(app, 'browser.js'),
      [
        "import { connect } from '@switchboard/client';",
        "const client = connect('wss://chat.example.com/ws');",
        "client.room('lobby').on('message', (m) => document.body.append(String(m.data)));",
      ].join('\n'),
    );
    const result = await build({
      entryPoints: ['browser.js'],
      absWorkingDir: app,
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2020',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    const inputs = Object.keys(result.metafile.inputs).filter((p) => p !== 'browser.js');
    expect(inputs.length).toBeGreaterThan(5);
    for (const p of inputs) expect(p).toMatch(/^node_modules\/@switchboard\/client\/dist\//);
    const code = result.outputFiles[0]!.text;
    expect(code).not.toMatch(/\brequire\(|from ?"node:/);
  });
});
