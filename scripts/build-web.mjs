// Builds the web pages into dist/web: web/src/{chat,admin}/main.ts bundled (with the client SDK from
// src/client) by esbuild into dist/web/assets/*.js, and the HTML, CSS and SVG copied beside them.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
mkdirSync(join(out, 'assets'), { recursive: true });
await build({
  entryPoints: { chat: join(root, 'web/src/chat/main.ts'), admin: join(root, 'web/src/admin/main.ts') },
  outdir: join(out, 'assets'),
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  logLevel: 'warning',
});
for (const page of ['index.html', 'admin.html']) copyFileSync(join(root, 'web', page), join(out, page));
for (const f of readdirSync(join(root, 'web', 'styles'))) copyFileSync(join(root, 'web', 'styles', f), join(out, 'assets', f));
