import { PGlite } from '@electric-sql/pglite';
const db = await PGlite.create();
console.log((await db.query('show max_stack_depth')).rows);
console.log((await db.query(`select pg_advisory_xact_lock(42)`)).rows);
for (const d of Number(process.argv[2]) ? [Number(process.argv[2])] : [100, 1000, 5000, 10000, 30000]) {
  const s = '['.repeat(d) + ']'.repeat(d);
  const t = performance.now();
  try { const r = await db.query('select $1::text::jsonb as j', [s]); console.log(d, 'ok', Math.round(performance.now()-t)); } catch (e) { console.log(d, 'ERR', e.message); }
}
await db.close();
