/**
 * The web pages every node serves: the chat page at `/`, the admin page at `/admin`, and their bundled
 * scripts and styles under `/assets/`. They are built from web/ into dist/web by `npm run build`
 * (scripts/build-web.mjs); the server only serves the fixed list of files below.
 */
import { fileURLToPath } from 'node:url';

/** dist/web/ of the package, from src/http (tests) and dist/http (built) alike. */
export const WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

const PAGES: Record<string, string> = { '/': 'index.html', '/admin': 'admin.html' };

/** The file and content type for a request path, or null when it is not a web asset. */
export function webAsset(path: string): { file: string; type: string } | null {
  const file = PAGES[path] ?? (/^\/assets\/[a-z0-9-]+\.(js|css|svg)$/.exec(path) !== null ? path.slice(1) : null);
  if (file === null) return null;
  return { file, type: TYPES[file.slice(file.lastIndexOf('.') + 1)]! };
}
