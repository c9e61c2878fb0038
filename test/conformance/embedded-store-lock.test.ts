/**
 * The data-dir lock (src/engines/messagestore/data-dir-lock.ts, `<dataDir>/history.lock`) through each embedded
 * store that takes it: a second store on an open directory is refused, in this process or while another live
 * process holds it; a lock left by a dead process is taken over; close releases it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { openPgliteStore } from '../../src/engines/messagestore/pglite.js';
import { openSqliteStore } from '../../src/engines/messagestore/sqlite.js';
import type { RoomMessage, RoomRef } from '../../src/engines/types.js';
import { sqliteWorkerUrl } from '../helpers/sqlite-worker.js';

const ref: RoomRef = { tenant: 'acme', room: 'lock' };
const msg: RoomMessage = { tenant: 'acme', room: 'lock', seq: 1, epoch: 'E', from: 'u', ts: 1, data: 'kept' };

const stores: [string, (dir: string) => Promise<MessageStore>][] = [
  ['sqlite', async (dir) => openSqliteStore(dir, { workerUrl: await sqliteWorkerUrl() })],
  ['pglite', (dir) => openPgliteStore(dir)],
];

describe.each(stores)('%s store: the data-dir lock', (_name, open) => {
  it('refuses a second store on an open directory, and takes over a lock left by a dead process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-history-lock-'));
    try {
      const first = await open(dir);
      const lock = join(dir, 'history.lock');
      expect((await readFile(lock, 'utf8')).trim()).toBe(String(process.pid));
      await expect(open(dir)).rejects.toThrow(/in use/);
      await first.insert([msg]);
      await first.close();
      expect(existsSync(lock)).toBe(false);

      // Another live process (our parent) holds it.
      await writeFile(lock, `${process.ppid}\n`);
      await expect(open(dir)).rejects.toThrow(new RegExp(`in use by process ${process.ppid}`));

      // A dead process held it.
      const dead = spawnSync(process.execPath, ['-e', '']);
      await writeFile(lock, `${dead.pid}\n`);
      const second = await open(dir);
      expect((await second.page(ref, { limit: 10 })).messages.map((m) => m.data)).toEqual(['kept']);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
