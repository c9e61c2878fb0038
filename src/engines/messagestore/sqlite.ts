/**
 * The embedded MessageStore: SQLite (better-sqlite3) in a file under the data directory, run by a worker
 * thread (sqlite-worker.ts) so that no database call ever runs on the node's event loop.
 *
 * What stays on the event loop: checking and JSON-encoding the messages of an insert, and decoding a page's
 * rows. An insert is sent to the worker in slices of at most `sliceRows` messages, the next slice only once
 * the worker stored the previous one and the event loop turned, so it never works on more than one slice at a time
 * (about 0.3 ms for 500 small messages on the 2-core dev machine; docs/benchmarks.md, scenario `embedded`).
 *
 * Behaviour beyond the MessageStore contract:
 * - Each slice is one transaction; a batch of several slices that fails halfway has its first slices
 *   stored (the contract's retry of the whole batch is idempotent).
 * - `data` is stored as the JSON text of the message, so it reads back exactly as JSON.parse gives it
 *   (U+0000, lone surrogates and object key order included).
 * - The same checks as the PostgreSQL store (storable.ts): TypeError for a bad seq or ts,
 *   UnstorableMessageError for data nested deeper than MAX_DATA_DEPTH, RangeError for a bad page query.
 * - `health()` as SqlMessageStore's (store-health.ts); if the worker dies, every pending and later
 *   operation rejects with EngineError `unavailable` and `health()` says so (the node's /readyz fails).
 * - Durability: WAL mode. With `synchronous: 'FULL'` (default) every committed slice is fsynced, so an
 *   acked message survives a power loss too; `NORMAL` survives a process crash only.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RoomMessage, RoomPosition, RoomRef } from '../types.js';
import { lockDataDir } from './data-dir-lock.js';
import type { HistoryPage, HistoryQuery, MessageStore } from './messagestore.js';
import type { SqlitePageRow, SqliteReply, SqliteRequest, SqliteValue, SqliteWorkerConfig } from './sqlite-protocol.js';
import { checkPageQuery, checkStorable } from './storable.js';
import { OperationHealth } from './store-health.js';
import { EngineError } from '../errors.js';

/** The database file under the data directory (a PGlite store, if any, is the directory `history/`). */
export const SQLITE_FILE = 'history.sqlite';

export interface SqliteStoreOptions {
  /** SQLite `synchronous`: FULL (default) fsyncs every commit; NORMAL survives a process crash, not a power loss. */
  synchronous: 'FULL' | 'NORMAL';
  /** Most messages encoded and sent to the worker in one go (default 500). */
  sliceRows: number;
  /** The worker script (default: the compiled sqlite-worker.js beside this module). */
  workerUrl: URL;
}

/** Request payloads without their id (added by `request`). */
type Payload = SqliteRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
type Success = Extract<SqliteReply, { ok: true }>;

/**
 * Opens (creating if needed) `${dataDir}/history.sqlite` in a new worker thread and applies pending
 * migrations. `dataDir` `memory://…` gives a throwaway in-memory database (tests). Only one store may use a
 * directory at a time (`${dataDir}/history.lock`, see data-dir-lock.ts).
 */
export async function openSqliteStore(dataDir: string, options: Partial<SqliteStoreOptions> = {}): Promise<SqliteMessageStore> {
  const sliceRows = options.sliceRows ?? 500;
  if (!Number.isInteger(sliceRows) || sliceRows < 1) throw new RangeError('sliceRows must be a positive integer');
  const inMemory = dataDir.startsWith('memory://');
  let release = async (): Promise<void> => undefined;
  if (!inMemory) {
    await mkdir(dataDir, { recursive: true });
    release = await lockDataDir(resolve(dataDir, 'history.lock'));
  }
  const config: SqliteWorkerConfig = { file: inMemory ? ':memory:' : join(dataDir, SQLITE_FILE), synchronous: options.synchronous ?? 'FULL' };
  try {
    const worker = new Worker(options.workerUrl ?? new URL('./sqlite-worker.js', import.meta.url), { workerData: config });
    const store = new SqliteMessageStore(worker, sliceRows, release);
    await store.opened;
    return store;
  } catch (error) {
    await release();
    throw error;
  }
}

export class SqliteMessageStore implements MessageStore {
  readonly kind = 'sqlite';
  /** Resolves once the worker opened and migrated the database; rejects (and the worker is gone) if it could not. */
  readonly opened: Promise<void>;
  private readonly ops = new OperationHealth('sqlite');
  private readonly pending = new Map<number, { resolve: (reply: Success) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  /** Why the worker is gone, once it is. */
  private gone: string | undefined;
  private readonly exited: Promise<void>;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    private readonly sliceRows: number,
    private readonly release: () => Promise<void>,
  ) {
    this.opened = new Promise<void>((resolveOpen, rejectOpen) => {
      this.pending.set(0, { resolve: () => resolveOpen(), reject: rejectOpen });
    });
    worker.on('message', (reply: SqliteReply) => this.settle(reply));
    worker.on('error', (error) => this.fail(`worker failed: ${error.message}`));
    this.exited = new Promise((resolveExit) =>
      worker.once('exit', (code) => {
        this.fail(`worker exited (code ${code})`);
        resolveExit();
      }),
    );
  }

  async insert(batch: readonly RoomMessage[]): Promise<void> {
    if (batch.length === 0) {
      this.ops.assertOpen();
      return;
    }
    await this.ops.run('insert', 'write', async () => {
      for (let i = 0; i < batch.length; i += this.sliceRows) {
        // The worker's reply can arrive within the same turn of the loop as the previous slice: yield, so other
        // work runs between any two slices.
        if (i > 0) await new Promise<void>((resolveTurn) => setImmediate(resolveTurn));
        const slice = batch.slice(i, i + this.sliceRows);
        const rows: SqliteValue[] = [];
        for (const m of slice) {
          checkStorable(m);
          rows.push(m.tenant, m.room, m.seq, m.epoch, m.from, m.ts, JSON.stringify(m.data) ?? 'null', m.idem ?? null, m.event ?? null, m.key ?? null);
        }
        await this.request({ op: 'insert', rows });
      }
    });
  }

  async page(ref: RoomRef, query: HistoryQuery): Promise<HistoryPage> {
    checkPageQuery(query);
    const { limit, before, after } = query;
    return this.ops.run('page', 'read', async () => {
      // One row more than asked tells whether more exist beyond the page.
      const reply = await this.request({ op: 'page', tenant: ref.tenant, room: ref.room, before: before ?? null, after: after ?? null, limit: limit + 1 });
      const rows = reply.rows ?? [];
      const kept = rows.slice(0, limit).map((row) => toMessage(ref, row));
      if (after === undefined) kept.reverse();
      return { messages: kept, more: rows.length > limit };
    });
  }

  async position(ref: RoomRef): Promise<RoomPosition | null> {
    return this.ops.run('position', 'read', async () => {
      const reply = await this.request({ op: 'position', tenant: ref.tenant, room: ref.room });
      return reply.position == null ? null : { seq: reply.position[0], epoch: reply.position[1] };
    });
  }

  health(): { ok: boolean; detail?: string } {
    const own = this.ops.health();
    if (!own.ok || this.gone === undefined) return own;
    return { ok: false, detail: this.gone };
  }

  /** Lets the operations in flight finish, closes the database (checkpointing its WAL), ends the worker and releases the lock; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.ops.close();
      try {
        if (this.gone === undefined) await this.request({ op: 'close' }).catch(() => undefined);
        await this.exited;
      } finally {
        await this.release();
      }
    })();
    return this.closing;
  }

  private request(payload: Payload): Promise<Success> {
    if (this.gone !== undefined) return Promise.reject(new EngineError('messagestore', 'unavailable', `sqlite store: ${this.gone}`));
    const id = this.nextId++;
    return new Promise<Success>((resolveReply, rejectReply) => {
      this.pending.set(id, { resolve: resolveReply, reject: rejectReply });
      this.worker.postMessage({ ...payload, id } as SqliteRequest);
    });
  }

  private settle(reply: SqliteReply): void {
    const waiter = this.pending.get(reply.id);
    if (waiter === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) waiter.resolve(reply);
    else {
      const { name, message, code } = reply.error;
      // A refused statement (constraint, type) will fail again; anything else (I/O, disk full, busy) may not.
      const invalid = name === 'TypeError' || name === 'RangeError' || (code ?? '').startsWith('SQLITE_CONSTRAINT');
      waiter.reject(new EngineError('messagestore', invalid ? 'invalid' : 'unavailable', `sqlite: ${message}${code === undefined ? '' : ` (${code})`}`));
    }
  }

  /** The worker is gone: every waiting operation fails, and every later one. */
  private fail(reason: string): void {
    this.gone ??= reason;
    for (const [id, waiter] of this.pending) {
      this.pending.delete(id);
      waiter.reject(new EngineError('messagestore', 'unavailable', `sqlite store: ${reason}`));
    }
  }
}

function toMessage(ref: RoomRef, row: SqlitePageRow): RoomMessage {
  const [seq, epoch, from, ts, data, idem, event, key] = row;
  const message: RoomMessage = {
    tenant: ref.tenant,
    room: ref.room,
    seq,
    epoch,
    from,
    ts,
    ...(event !== null ? { event } : {}),
    ...(key !== null ? { key } : {}),
    data: JSON.parse(data) as RoomMessage['data'],
  };
  return idem === null ? message : { ...message, idem };
}
