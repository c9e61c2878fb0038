/**
 * SqlMessageStore: the MessageStore on PostgreSQL SQL, run through a SqlDriver (PGlite embedded,
 * PostgreSQL via `pg` in a cluster). The schema is migrations.ts, migrations 1 and 2.
 */
import type { Json, RoomMessage, RoomPosition, RoomRef } from '../types.js';
import type { HistoryPage, HistoryQuery, MessageStore } from './messagestore.js';
import { MAX_BIND_PARAMS, type SqlDriver, type SqlParam } from './sql.js';
import { checkPageQuery, checkStorable, toSafeInt } from './storable.js';
import { OperationHealth } from './store-health.js';
import { EngineError } from '../errors.js';

export { MAX_DATA_DEPTH, MAX_PAGE_LIMIT, UnstorableMessageError, unstorableReason } from './storable.js';

/** Columns written per row; with MAX_BIND_PARAMS this bounds the rows of one INSERT. */
const COLUMNS = 10;
/** Most rows in one INSERT statement: 6,553 rows = 65,530 parameters. */
export const MAX_ROWS_PER_STATEMENT = Math.floor(MAX_BIND_PARAMS / COLUMNS);

export interface SqlMessageStoreOptions {
  /** Rows per INSERT statement, 1..MAX_ROWS_PER_STATEMENT (default: the maximum). Lower only for tests. */
  maxRowsPerStatement: number;
}

/** A `messages` row as the drivers return it: bigint is a number (PGlite) or a string (`pg`). */
interface MessageRow {
  tenant: string;
  room: string;
  seq: number | string | bigint;
  epoch: string;
  sender: string;
  ts: number | string | bigint;
  data: Json;
  idem: string | null;
  event: string | null;
  mkey: string | null;
}

const SELECT_COLUMNS = 'tenant, room, seq, epoch, sender, ts, data, idem, event, mkey';

/**
 * The SQL MessageStore. Behaviour beyond the MessageStore contract:
 * - `insert` writes each batch with multi-row `INSERT … ON CONFLICT (tenant, room, seq) DO NOTHING`
 *   statements of at most MAX_ROWS_PER_STATEMENT rows; a batch needing several statements runs them in
 *   one transaction, so a batch is stored wholly or not at all. On PostgreSQL (`pg`) the batch is one
 *   `INSERT … SELECT FROM unnest(…)` statement instead. Duplicates inside a batch are stored once.
 * - `data` is stored as jsonb, which cannot hold U+0000 or unpaired UTF-16 surrogates: those are stored
 *   as U+FFFD (in string values and keys) instead of failing the batch forever. jsonb also drops
 *   duplicate object keys (last wins, as JSON.parse does) and does not keep key order.
 * - `insert` rejects with UnstorableMessageError (before touching the database) for a message whose
 *   `data` is nested deeper than MAX_DATA_DEPTH, and with TypeError for a seq that is not a positive
 *   safe integer or a ts that is not a safe integer.
 * - `page` rejects with RangeError for a limit outside 1..1000, a negative or non-integer
 *   `before`/`after`, or both given.
 * - `health()` is not ok, with the error in `detail`, while the most recent insert failed or the most
 *   recent read (`page`/`position`) failed, and after `close()`. Writes and reads are tracked apart, so
 *   successful reads do not hide inserts that keep failing; the next success of the same kind clears
 *   it. Pages rejected for bad arguments do not count.
 * - After `close()` every operation rejects.
 */
export class SqlMessageStore implements MessageStore {
  readonly kind: string;
  private readonly maxRows: number;
  private readonly ops: OperationHealth;

  constructor(
    private readonly driver: SqlDriver,
    options: Partial<SqlMessageStoreOptions> = {},
  ) {
    this.kind = driver.kind;
    this.ops = new OperationHealth(driver.kind);
    const maxRows = options.maxRowsPerStatement ?? MAX_ROWS_PER_STATEMENT;
    if (!Number.isInteger(maxRows) || maxRows < 1 || maxRows > MAX_ROWS_PER_STATEMENT) {
      throw new RangeError(`maxRowsPerStatement must be 1..${MAX_ROWS_PER_STATEMENT}`);
    }
    this.maxRows = maxRows;
  }

  async insert(batch: readonly RoomMessage[]): Promise<void> {
    if (batch.length === 0) {
      this.ops.assertOpen();
      return;
    }
    await this.ops.run('insert', 'write', async () => {
      if (this.driver.kind === 'postgres') {
        // One statement with 9 array parameters, whatever the batch size (see unnestInsert).
        await this.driver.query(...unnestInsert(batch));
        return;
      }
      const statements: { text: string; params: SqlParam[] }[] = [];
      for (let i = 0; i < batch.length; i += this.maxRows) {
        statements.push(insertStatement(batch.slice(i, i + this.maxRows)));
      }
      if (statements.length === 1) {
        const only = statements[0]!;
        await this.driver.query(only.text, only.params);
        return;
      }
      await this.driver.transaction(async (tx) => {
        for (const s of statements) await tx.query(s.text, s.params);
      });
    });
  }

  async page(ref: RoomRef, query: HistoryQuery): Promise<HistoryPage> {
    checkPageQuery(query);
    const { limit, before, after } = query;
    return this.ops.run('page', 'read', async () => {
      const params: SqlParam[] = [ref.tenant, ref.room];
      let where = 'tenant = $1 AND room = $2';
      if (before !== undefined) where += ` AND seq < $${params.push(before)}`;
      if (after !== undefined) where += ` AND seq > $${params.push(after)}`;
      const ascending = after !== undefined;
      // One row more than asked tells whether more exist beyond the page.
      const limitParam = params.push(limit + 1);
      const { rows } = await this.driver.query<MessageRow>(
        `SELECT ${SELECT_COLUMNS} FROM messages WHERE ${where} ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT $${limitParam}`,
        params,
      );
      const more = rows.length > limit;
      const kept = rows.slice(0, limit).map(toMessage);
      if (!ascending) kept.reverse();
      return { messages: kept, more };
    });
  }

  async position(ref: RoomRef): Promise<RoomPosition | null> {
    return this.ops.run('position', 'read', async () => {
      const { rows } = await this.driver.query<Pick<MessageRow, 'seq' | 'epoch'>>(
        'SELECT seq, epoch FROM messages WHERE tenant = $1 AND room = $2 ORDER BY seq DESC LIMIT 1',
        [ref.tenant, ref.room],
      );
      const row = rows[0];
      return row === undefined ? null : { seq: toInt(row.seq, 'seq'), epoch: row.epoch };
    });
  }

  health(): { ok: boolean; detail?: string } {
    return this.ops.health();
  }

  async close(): Promise<void> {
    if (!this.ops.close()) return;
    await this.driver.close();
  }
}

/** One multi-row INSERT … ON CONFLICT DO NOTHING for `rows` (at most MAX_ROWS_PER_STATEMENT). */
function insertStatement(rows: readonly RoomMessage[]): { text: string; params: SqlParam[] } {
  const params: SqlParam[] = [];
  const tuples: string[] = [];
  for (const m of rows) {
    checkStorable(m);
    const n = params.length;
    tuples.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6}, $${n + 7}::text::jsonb, $${n + 8}, $${n + 9}, $${n + 10})`);
    params.push(m.tenant, m.room, m.seq, m.epoch, m.from, m.ts, jsonbText(m.data), m.idem ?? null, m.event ?? null, m.key ?? null);
  }
  return {
    text: `INSERT INTO messages (${SELECT_COLUMNS}) VALUES ${tuples.join(', ')} ON CONFLICT (tenant, room, seq) DO NOTHING`,
    params,
  };
}

/**
 * PostgreSQL: the whole batch as one `INSERT … SELECT FROM unnest(10 arrays) ON CONFLICT DO NOTHING`.
 * Ten parameters instead of ten per row: no 65,535-parameter limit, one short statement text, and far
 * less per-value work in the client than a multi-row VALUES list (measured by the bench's `engines` scenario: `npm run bench -- --only engines`).
 */
function unnestInsert(rows: readonly RoomMessage[]): [string, SqlParam[]] {
  const cols: [string[], string[], number[], string[], string[], number[], string[], (string | null)[], (string | null)[], (string | null)[]] = [
    [],
    [],
    [],
    [],
    [],
    [],
    [],
    [],
    [],
    [],
  ];
  for (const m of rows) {
    checkStorable(m);
    cols[0].push(m.tenant);
    cols[1].push(m.room);
    cols[2].push(m.seq);
    cols[3].push(m.epoch);
    cols[4].push(m.from);
    cols[5].push(m.ts);
    cols[6].push(jsonbText(m.data));
    cols[7].push(m.idem ?? null);
    cols[8].push(m.event ?? null);
    cols[9].push(m.key ?? null);
  }
  return [
    `INSERT INTO messages (${SELECT_COLUMNS})
     SELECT t, r, s, e, f, ts, d::jsonb, i, ev, k
     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[]) AS u(t, r, s, e, f, ts, d, i, ev, k)
     ON CONFLICT (tenant, room, seq) DO NOTHING`,
    cols as unknown as SqlParam[],
  ];
}

function toMessage(row: MessageRow): RoomMessage {
  const message: RoomMessage = {
    tenant: row.tenant,
    room: row.room,
    seq: toInt(row.seq, 'seq'),
    epoch: row.epoch,
    from: row.sender,
    ts: toInt(row.ts, 'ts'),
    ...(row.event !== null ? { event: row.event } : {}),
    ...(row.mkey !== null ? { key: row.mkey } : {}),
    data: row.data,
  };
  return row.idem === null ? message : { ...message, idem: row.idem };
}

function toInt(value: number | string | bigint, column: string): number {
  return toSafeInt(value, column, (message) => new EngineError('messagestore', 'invalid', message));
}

/**
 * `\u0000` and lone-surrogate escapes in JSON.stringify output that are real escapes (preceded by an
 * even number of backslashes). JSON.stringify writes paired surrogates as raw characters, so every
 * `\uD800`–`\uDFFF` escape it emits is an unpaired one.
 */
const JSONB_UNSAFE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi;

/** `data` as JSON text that PostgreSQL's jsonb input accepts (U+0000 and lone surrogates become U+FFFD). */
export function jsonbText(data: Json): string {
  const text = JSON.stringify(data) ?? 'null';
  return text.includes('\\u') ? text.replace(JSONB_UNSAFE_ESCAPE, '$1\\ufffd') : text;
}
