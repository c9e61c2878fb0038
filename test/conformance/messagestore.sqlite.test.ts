/**
 * The MessageStore contract on the embedded SQLite store (on disk and `memory://`), plus what the SQLite
 * store promises beyond it: exact JSON text, the same input checks as PostgreSQL, and an old PGlite directory
 * left alone. The directory lock: embedded-store-lock.test.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../src/engines/embedded.js';
import { isEngineError } from '../../src/engines/errors.js';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { openSqliteStore, SQLITE_FILE, type SqliteStoreOptions } from '../../src/engines/messagestore/sqlite.js';
import { MAX_DATA_DEPTH, UnstorableMessageError } from '../../src/engines/messagestore/storable.js';
import type { Json, RoomMessage, RoomRef } from '../../src/engines/types.js';
import { sqliteWorkerUrl } from '../helpers/sqlite-worker.js';
import { directoryHarness, messageStoreConformance } from './messagestore.suite.js';

const open = async (dir: string, options: Partial<SqliteStoreOptions> = {}): Promise<MessageStore> =>
  openSqliteStore(dir, { workerUrl: await sqliteWorkerUrl(), ...options });

messageStoreConformance(
  'sqlite (disk)',
  directoryHarness((dir) => open(dir)),
);

// Slices of 7 rows: every multi-row test of the suite crosses slice boundaries.
messageStoreConformance('sqlite (memory, small slices)', async () => {
  const store = await open('memory://conformance', { sliceRows: 7, synchronous: 'NORMAL' });
  return { store, cleanup: () => store.close() };
});

const ref: RoomRef = { tenant: 'acme', room: 'sqlite' };
const msg = (seq: number, data: Json = seq, room = ref.room): RoomMessage => ({ tenant: 'acme', room, seq, epoch: 'E', from: 'u', ts: seq, data });

describe('SQLite store beyond the contract', () => {
  let store: MessageStore;
  let rooms = 0;
  const fresh = (): RoomRef => ({ tenant: 'acme', room: `sq-${++rooms}` });
  beforeAll(async () => {
    store = await open('memory://extra');
  });
  afterAll(async () => {
    await store.close();
  });

  it('keeps data exactly: U+0000, lone surrogates and key order', async () => {
    const r = fresh();
    const data: Json = { z: 1, 'k\u0000': 'a\u0000b', lone: 'x\ud800y\udc00z', pair: '🎉', a: [1, '\u0000'] };
    await store.insert([msg(1, data, r.room)]);
    const got = (await store.page(r, { limit: 1 })).messages[0]!.data;
    expect(got).toEqual(data);
    expect(Object.keys(got as object)).toEqual(['z', 'k\u0000', 'lone', 'pair', 'a']);
  });

  it('rejects deep data, a bad seq or ts before the worker sees the batch; health recovers', async () => {
    const r = fresh();
    let deep: Json = 1;
    for (let i = 0; i <= MAX_DATA_DEPTH; i++) deep = [deep];
    await expect(store.insert([msg(1, 'ok', r.room), msg(2, deep, r.room)])).rejects.toBeInstanceOf(UnstorableMessageError);
    expect(store.health().ok).toBe(false);
    for (const bad of [msg(0), { ...msg(1), seq: 1.5 }, { ...msg(1), seq: 2 ** 53 }, { ...msg(1), ts: 1.5 }]) {
      await expect(store.insert([bad])).rejects.toThrow(TypeError);
    }
    await store.insert([msg(1, 'ok', r.room)]);
    expect(store.health()).toEqual({ ok: true });
    expect((await store.page(r, { limit: 10 })).messages.map((m) => m.data)).toEqual(['ok']);
  });

  it('encodes a large insert one slice per event-loop turn (the loop is never held for a whole batch)', async () => {
    const slices = await open('memory://slices', { sliceRows: 100 });
    try {
      const r = fresh();
      let encoded = 0;
      // JSON.stringify calls toJSON: counts the messages the store has encoded so far.
      const counted = (i: number): Json => ({ toJSON: () => (encoded++, { i }) }) as unknown as Json;
      const perTurn: number[] = [];
      let seen = 0;
      let inserting = true;
      const tick = (): void => {
        perTurn.push(encoded - seen);
        seen = encoded;
        if (inserting) setImmediate(tick);
      };
      const done = slices.insert(Array.from({ length: 2000 }, (_, i) => msg(i + 1, counted(i), r.room)));
      const synchronously = encoded;
      setImmediate(tick);
      await done;
      inserting = false;
      expect(synchronously).toBeLessThanOrEqual(100);
      expect(encoded).toBe(2000);
      expect(Math.max(...perTurn)).toBeLessThanOrEqual(100);
      expect((await slices.page(r, { limit: 1 })).messages[0]!.data).toEqual({ i: 1999 });
    } finally {
      await slices.close();
    }
  });

  it('a database file it cannot open fails the open with an EngineError, and releases the lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-sqlite-bad-'));
    try {
      await writeFile(join(dir, SQLITE_FILE), 'not a database, just text that is long enough to have a header'.repeat(20));
      const error = await open(dir).catch((e: unknown) => e);
      expect(isEngineError(error)).toBe(true);
      expect(existsSync(join(dir, 'history.lock'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite store directory', () => {
  it('a data dir holding an old PGlite store opens, leaves it alone and says so', async () => {
    const old = await mkdtemp(join(tmpdir(), 'sb-sqlite-pglite-'));
    try {
      await mkdir(join(old, 'history'));
      await writeFile(join(old, 'history', 'PG_VERSION'), '18\n');
      const notices: string[] = [];
      const store = await openEmbeddedStore({
        dataDir: old,
        store: 'sqlite',
        onNotice: (m) => notices.push(m),
        sqlite: { workerUrl: await sqliteWorkerUrl() },
      });
      try {
        expect(store.kind).toBe('sqlite');
        expect(notices).toEqual([expect.stringMatching(/PGlite.*not read/)]);
        expect(await store.position(ref)).toBeNull();
        expect(await readFile(join(old, 'history', 'PG_VERSION'), 'utf8')).toBe('18\n');
      } finally {
        await store.close();
      }
    } finally {
      await rm(old, { recursive: true, force: true });
    }
  });
});
