/**
 * The SQLite store's worker thread: owns the one better-sqlite3 connection and answers the requests of
 * sqlite.ts in order. better-sqlite3 is synchronous; here its calls block this thread only, never the
 * node's event loop.
 *
 * The database runs in WAL mode: a commit appends to `<file>-wal` (and with `synchronous=FULL` fsyncs it),
 * so a committed batch survives kill -9 of the process; a reader never waits for the writer's checkpoint.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SQLITE_COLUMNS, type SqlitePageRow, type SqliteReply, type SqliteRequest, type SqliteValue, type SqliteWorkerConfig } from './sqlite-protocol.js';
import { migrateSqlite } from './sqlite-schema.js';

const port = parentPort;
if (port === null) throw new Error('sqlite-worker.ts runs only as a worker thread');
const config = workerData as SqliteWorkerConfig;

const COLUMNS = 'seq, epoch, sender, ts, data, idem, event, mkey';

function describe(error: unknown): { name: string; message: string; code?: string } {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const code = (error as { code?: unknown }).code;
  return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) };
}

function open(): Database.Database {
  const db = new Database(config.file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${config.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
    migrateSqlite(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

let db: Database.Database;
try {
  db = open();
} catch (error) {
  port.postMessage({ id: 0, ok: false, error: describe(error) } satisfies SqliteReply);
  port.close();
  throw error;
}

const insertRow = db.prepare(
  'INSERT INTO messages (tenant, room, seq, epoch, sender, ts, data, idem, event, mkey) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, room, seq) DO NOTHING',
);
const insertRows = db.transaction((values: readonly SqliteValue[]) => {
  for (let i = 0; i < values.length; i += SQLITE_COLUMNS) insertRow.run(values.slice(i, i + SQLITE_COLUMNS));
});
const newest = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE tenant = ? AND room = ? ORDER BY seq DESC LIMIT ?`).raw(true);
const below = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE tenant = ? AND room = ? AND seq < ? ORDER BY seq DESC LIMIT ?`).raw(true);
const above = db.prepare(`SELECT ${COLUMNS} FROM messages WHERE tenant = ? AND room = ? AND seq > ? ORDER BY seq ASC LIMIT ?`).raw(true);
const top = db.prepare('SELECT seq, epoch FROM messages WHERE tenant = ? AND room = ? ORDER BY seq DESC LIMIT 1').raw(true);

function answer(req: SqliteRequest): SqliteReply {
  switch (req.op) {
    case 'insert':
      insertRows(req.rows);
      return { id: req.id, ok: true };
    case 'page': {
      const rows =
        req.before !== null
          ? below.all(req.tenant, req.room, req.before, req.limit)
          : req.after !== null
            ? above.all(req.tenant, req.room, req.after, req.limit)
            : newest.all(req.tenant, req.room, req.limit);
      return { id: req.id, ok: true, rows: rows as SqlitePageRow[] };
    }
    case 'position': {
      const row = top.get(req.tenant, req.room) as [number, string] | undefined;
      return { id: req.id, ok: true, position: row ?? null };
    }
    case 'close':
      db.close(); // checkpoints the WAL into the database file and removes it
      return { id: req.id, ok: true };
  }
}

port.on('message', (req: SqliteRequest) => {
  let reply: SqliteReply;
  try {
    reply = answer(req);
  } catch (error) {
    reply = { id: req.id, ok: false, error: describe(error) };
  }
  port.postMessage(reply);
  if (req.op === 'close') port.close();
});
port.postMessage({ id: 0, ok: true } satisfies SqliteReply);
