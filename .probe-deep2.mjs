import { PGlite } from '@electric-sql/pglite';
const db = await PGlite.create();
for (const d of process.argv.slice(2).map(Number)) {
  const s = '['.repeat(d) + ']'.repeat(d);
  const t = performance.now();
  try { const r = await db.query('select $1::text::jsonb as j', [s]); console.log(d, 'ok', Math.round(performance.now()-t)); } catch (e) { console.log(d, 'ERR', e.message); }
}
await db.close();
