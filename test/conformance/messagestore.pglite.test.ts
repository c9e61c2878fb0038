/**
 * The MessageStore contract on PGlite on disk, plus what the SQL store and its PGlite driver promise
 * beyond it (chunking, transactions, sanitising, migrations). The directory lock: embedded-store-lock.test.ts.
 */
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { appliedVersions, migrate, MIGRATIONS } from '../../src/engines/messagestore/migrations.js';
import { openPgliteStore, PgliteDriver } from '../../src/engines/messagestore/pglite.js';
import type { SqlDriver, SqlExecutor, SqlParam } from '../../src/engines/messagestore/sql.js';
import { MAX_DATA_DEPTH, MAX_ROWS_PER_STATEMENT, SqlMessageStore, UnstorableMessageError } from '../../src/engines/messagestore/sql-store.js';
import type { Json, RoomMessage, RoomRef } from '../../src/engines/types.js';
import { directoryHarness, messageStoreConformance } from './messagestore.suite.js';

messageStoreConformance(
  'pglite (disk)',
  directoryHarness((dir) => openPgliteStore(dir)),
);

const ref: RoomRef = { tenant: 'acme', room: 'sql' };
const msg = (seq: number, data: Json = seq, room = ref.room): RoomMessage => ({ tenant: 'acme', room, seq, epoch: 'E', from: 'u', ts: seq, data });
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A SqlDriver that records statements and can fail chosen ones, over a real driver. */
class RecordingDriver implements SqlDriver {
  readonly kind: string;
  readonly statements: { text: string; params: number; inTx: boolean }[] = [];
  /** Called before each statement; throw to fail it. */
  failWhen: (text: string, index: number) => void = () => undefined;

  constructor(private readonly inner: SqlDriver) {
    this.kind = inner.kind;
  }

  query<T>(text: string, params: readonly SqlParam[] = []): Promise<{ rows: T[] }> {
    this.record(text, params, false);
    return this.inner.query<T>(text, params);
  }

  exec(text: string): Promise<void> {
    return this.inner.exec(text);
  }

  transaction<R>(fn: (tx: SqlExecutor) => Promise<R>): Promise<R> {
    return this.inner.transaction((tx) =>
      fn({
        query: <T>(text: string, params: readonly SqlParam[] = []) => {
          this.record(text, params, true);
          return tx.query<T>(text, params);
        },
        exec: (text) => tx.exec(text),
      }),
    );
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private record(text: string, params: readonly SqlParam[], inTx: boolean): void {
    this.statements.push({ text, params: params.length, inTx });
    this.failWhen(text, this.statements.length - 1);
  }
}

describe('SqlMessageStore on PGlite (memory://)', () => {
  let db: PGlite;
  let driver: PgliteDriver;
  let recording: RecordingDriver;
  let rooms = 0;
  const fresh = (): RoomRef => ({ tenant: 'acme', room: `sql-${++rooms}` });
  const seqs = async (store: MessageStore, r: RoomRef): Promise<number[]> => {
    const out: number[] = [];
    let after = 0;
    for (;;) {
      const page = await store.page(r, { after, limit: 1000 });
      out.push(...page.messages.map((m) => m.seq));
      if (!page.more) return out;
      after = out[out.length - 1]!;
    }
  };

  beforeAll(async () => {
    db = await PGlite.create();
    driver = new PgliteDriver(db);
    expect(await migrate(driver)).toEqual([1, 2, 3]);
    recording = new RecordingDriver(driver);
  });
  afterAll(async () => {
    await driver.close();
  });

  it('migrations run once: a second run applies nothing and each version is recorded once', async () => {
    expect(await migrate(driver)).toEqual([]);
    expect([...(await appliedVersions(driver))].sort()).toEqual([1, 2, 3]);
    const rows = await driver.query<{ version: number; applied_at: Date }>('SELECT version, applied_at FROM schema_migrations');
    expect(rows.rows).toHaveLength(3);
    expect(rows.rows[0]!.applied_at).toBeInstanceOf(Date);
  });

  it('migration 2 adds messages.event to a version-1 database; rows stored before read back without an event', async () => {
    const old = new PgliteDriver(await PGlite.create());
    try {
      expect(await migrate(old, MIGRATIONS.slice(0, 1))).toEqual([1]);
      await old.query(
        "INSERT INTO messages (tenant, room, seq, epoch, sender, ts, data, idem) VALUES ('acme', 'v1', 1, 'E', 'alice', 1700000000000, '{\"n\":1}', 'k')",
      );
      expect(await migrate(old)).toEqual([2, 3]);
      const store = new SqlMessageStore(old);
      await store.insert([{ tenant: 'acme', room: 'v1', seq: 2, epoch: 'E', from: 'bob', ts: 1_700_000_000_001, event: 'my-event', data: 2 }]);
      const page = await store.page({ tenant: 'acme', room: 'v1' }, { limit: 10 });
      expect(page.messages).toEqual([
        { tenant: 'acme', room: 'v1', seq: 1, epoch: 'E', from: 'alice', ts: 1_700_000_000_000, data: { n: 1 }, idem: 'k' },
        { tenant: 'acme', room: 'v1', seq: 2, epoch: 'E', from: 'bob', ts: 1_700_000_000_001, event: 'my-event', data: 2 },
      ]);
      expect(Object.keys(page.messages[0]!)).not.toContain('event');
    } finally {
      await old.close();
    }
  });

  it('a failing migration rolls back entirely and is not recorded', async () => {
    const bad = [...MIGRATIONS, { version: 4, name: 'broken', sql: 'CREATE TABLE half_done (x int); SELECT no_such_column FROM half_done;' }];
    await expect(migrate(driver, bad)).rejects.toThrow(/no_such_column/);
    expect([...(await appliedVersions(driver))].sort()).toEqual([1, 2, 3]);
    expect((await driver.query<{ t: string | null }>("SELECT to_regclass('half_done')::text AS t")).rows[0]!.t).toBeNull();
  });

  it('page and position can use the primary key index (no other index exists)', async () => {
    const indexes = await driver.query<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'");
    expect(indexes.rows.map((r) => r.indexname)).toEqual(['messages_pkey']);
    await driver.transaction(async (tx) => {
      await tx.exec('SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off');
      const plan = async (sql: string): Promise<string> =>
        (await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, ['acme', 'r'])).rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(await plan('SELECT * FROM messages WHERE tenant = $1 AND room = $2 ORDER BY seq DESC LIMIT 51')).toMatch(
        /Index Scan Backward using messages_pkey/,
      );
      expect(await plan('SELECT * FROM messages WHERE tenant = $1 AND room = $2 AND seq > 10 ORDER BY seq ASC LIMIT 51')).toMatch(
        /Index Scan using messages_pkey/,
      );
      const pos = await plan('SELECT seq, epoch FROM messages WHERE tenant = $1 AND room = $2 ORDER BY seq DESC LIMIT 1');
      expect(pos).toMatch(/Index Scan Backward using messages_pkey/);
      expect(pos).not.toMatch(/Sort/);
    });
  });

  it('a batch is one INSERT; a batch above the parameter limit is split, in one transaction, under 65535 parameters', async () => {
    const store = new SqlMessageStore(recording);
    recording.statements.length = 0;
    const r = fresh();
    await store.insert(range(1, 2000).map((s) => msg(s, s, r.room)));
    expect(recording.statements).toHaveLength(1);
    expect(recording.statements[0]).toMatchObject({ params: 20_000, inTx: false });
    expect(recording.statements[0]!.text).toMatch(/ON CONFLICT \(tenant, room, seq\) DO NOTHING$/);

    recording.statements.length = 0;
    const big = fresh();
    await store.insert(range(1, MAX_ROWS_PER_STATEMENT + 10).map((s) => msg(s, s, big.room)));
    expect(recording.statements.map((s) => s.params)).toEqual([MAX_ROWS_PER_STATEMENT * 10, 100]);
    expect(recording.statements.every((s) => s.inTx && s.params <= 65_535)).toBe(true);
    expect(await seqs(store, big)).toEqual(range(1, MAX_ROWS_PER_STATEMENT + 10));
  });

  it('a split batch failing halfway stores nothing, and its retry stores every message once', async () => {
    const store = new SqlMessageStore(recording, { maxRowsPerStatement: 300 });
    const r = fresh();
    const batch = range(1, 2000).map((s) => msg(s, s, r.room));
    recording.statements.length = 0;
    recording.failWhen = (_text, index) => {
      if (index === 3) throw new Error('connection lost (test)');
    };
    await expect(store.insert(batch)).rejects.toThrow(/connection lost/);
    expect(store.health()).toMatchObject({ ok: false, detail: expect.stringMatching(/insert failed.*connection lost/) });
    expect(await store.position(r)).toBeNull();
    // A successful read does not hide the failing writes.
    expect(store.health().ok).toBe(false);
    recording.failWhen = () => undefined;
    recording.statements.length = 0;
    await store.insert(batch);
    expect(recording.statements).toHaveLength(7);
    expect(store.health()).toEqual({ ok: true });
    expect(await seqs(store, r)).toEqual(range(1, 2000));
  });

  it('stores U+0000 and unpaired surrogates as U+FFFD instead of failing the batch', async () => {
    const store = new SqlMessageStore(driver);
    const r = fresh();
    const data: Json = { 'k\u0000': 'a\u0000b', lone: 'x\ud800y\udc00z', pair: '🎉', literal: '\\u0000 stays', list: ['\u0000'] };
    await store.insert([msg(1, data, r.room)]);
    const got = (await store.page(r, { limit: 1 })).messages[0]!.data;
    expect(got).toEqual({ 'k\ufffd': 'a\ufffdb', lone: 'x\ufffdy\ufffdz', pair: '🎉', literal: '\\u0000 stays', list: ['\ufffd'] });
  });

  it('rejects data nested deeper than MAX_DATA_DEPTH without touching the database; health recovers', async () => {
    const store = new SqlMessageStore(recording);
    const r = fresh();
    const deep = (depth: number): Json => {
      let v: Json = 1;
      for (let i = 0; i < depth; i++) v = [v];
      return v;
    };
    recording.statements.length = 0;
    const error = await store.insert([msg(1, 'ok', r.room), msg(2, deep(MAX_DATA_DEPTH + 1), r.room)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnstorableMessageError);
    expect((error as UnstorableMessageError).key).toBe(`acme/${r.room}/2`);
    expect(recording.statements).toHaveLength(0);
    expect(store.health().ok).toBe(false);
    await store.insert([msg(1, 'ok', r.room), msg(2, deep(MAX_DATA_DEPTH), r.room)]);
    expect(store.health()).toEqual({ ok: true });
    expect((await store.page(r, { limit: 10 })).messages[1]!.data).toEqual(deep(MAX_DATA_DEPTH));
  });

  it('rejects a seq that is not a positive safe integer and a non-integer ts', async () => {
    const store = new SqlMessageStore(driver);
    for (const bad of [{ ...msg(0) }, { ...msg(1), seq: 1.5 }, { ...msg(1), seq: 2 ** 53 }, { ...msg(1), ts: 1.5 }]) {
      await expect(store.insert([bad])).rejects.toThrow(TypeError);
    }
  });

  it('a query issued during a transaction waits for it and never runs inside it', async () => {
    const r = fresh();
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tx = driver
      .transaction(async (t) => {
        await t.query("INSERT INTO messages VALUES ($1, $2, 1, 'E', 'u', 1, '1', NULL)", ['acme', r.room]);
        order.push('tx inserted');
        await held;
        throw new Error('roll back (test)');
      })
      .catch(() => order.push('tx rolled back'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const outside = driver
      .query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE tenant = $1 AND room = $2', ['acme', r.room])
      .then((res) => order.push(`outside saw ${res.rows[0]!.n}`));
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await Promise.all([tx, outside]);
    expect(order).toEqual(['tx inserted', 'tx rolled back', 'outside saw 0']);
  });

  it('reports kind from the driver', () => {
    expect(new SqlMessageStore(driver).kind).toBe('pglite');
  });
});
