import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';
import { rmSync, mkdirSync } from 'node:fs';
const variant = process.argv[2];
const dir = '/tmp/pgx/mem-' + variant;
rmSync(dir, { recursive: true, force: true }); mkdirSync(dir, { recursive: true });
const mb = (n) => Math.round(n / 1048576);
const opts = { fs: new NodeFS(dir) };
const extra = [];
if (variant.includes('sb16')) extra.push('-c', 'shared_buffers=16MB');
if (variant.includes('sb8')) extra.push('-c', 'shared_buffers=8MB');
if (variant.includes('wal')) extra.push('-c', 'wal_buffers=1MB');
if (extra.length) opts.startParams = [...PGlite.defaultStartParams, ...extra];
const im = /im(\d+)/.exec(variant); if (im) opts.initialMemory = Number(im[1]) * 1048576;
global.gc?.();
const base = process.memoryUsage().rss;
let t = performance.now();
const db = await PGlite.create(opts);
const tOpen1 = performance.now() - t;
const rss1 = process.memoryUsage().rss;
await db.exec('create table m(tenant text, room text, seq bigint, data jsonb, primary key(tenant,room,seq))');
for (let b = 0; b < 20; b++) {
  const vals = []; const ps = [];
  for (let i = 0; i < 500; i++) { const s = b * 500 + i + 1; ps.push(`($${vals.length+1},$${vals.length+2},$${vals.length+3},$${vals.length+4}::text::jsonb)`); vals.push('t', 'r' + (s % 50), s, JSON.stringify({ text: 'hello world message number ' + s, n: s })); }
  await db.query(`insert into m values ${ps.join(',')} on conflict do nothing`, vals);
}
for (let i = 0; i < 200; i++) await db.query('select * from m where tenant=$1 and room=$2 order by seq desc limit 101', ['t', 'r' + (i % 50)]);
const rss2 = process.memoryUsage().rss;
const sb = (await db.query('show shared_buffers')).rows[0];
await db.close();
// reopen time (existing data dir)
t = performance.now();
const db2 = await PGlite.create({ ...opts, fs: new NodeFS(dir) });
const tOpen2 = performance.now() - t;
await db2.close();
console.log(JSON.stringify({ variant, sb: sb.shared_buffers, baseMB: mb(base), openMs: Math.round(tOpen1), reopenMs: Math.round(tOpen2), rssAfterOpenMB: mb(rss1), deltaOpenMB: mb(rss1 - base), rssAfterLoadMB: mb(rss2), deltaLoadMB: mb(rss2 - base) }));
