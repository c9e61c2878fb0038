import { PGlite } from '@electric-sql/pglite';
const db = await PGlite.create();
await db.exec('create table t(x int)');
const order = [];
const tx = db.transaction(async (t) => {
  order.push('tx-begin');
  await t.query('insert into t values (1)');
  await new Promise(r => setTimeout(r, 200));
  order.push('tx-after-sleep');
  throw new Error('rollback');
}).catch(e => order.push('tx-rejected:' + e.message));
await new Promise(r => setTimeout(r, 50));
const q = db.query('select count(*)::int as n from t').then(r => order.push('outside-count=' + r.rows[0].n));
await Promise.all([tx, q]);
console.log(order);
// error inside tx with sql error
try { await db.transaction(async t => { await t.query('insert into t values (2)'); await t.query('select nope'); }); } catch (e) { console.log('tx err', e.message); }
console.log((await db.query('select count(*)::int as n from t')).rows);
await db.close();
