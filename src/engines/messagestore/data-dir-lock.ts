/**
 * The lock that lets one embedded store at a time use a data directory (`<dataDir>/history.lock`), whichever
 * store it is (SQLite or PGlite): a pid file, so a crashed owner's lock is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { EngineError } from '../errors.js';

/** Lock files (resolved paths) held by stores open in this process. */
const heldLocks = new Set<string>();

/**
 * Takes the lock file at `path` and returns its release function. The file holds the owner's pid: a second
 * opener, in this or another live process, fails with EngineError `in_use` instead of corrupting the
 * database; a lock left by a dead process is taken over.
 */
export async function lockDataDir(path: string): Promise<() => Promise<void>> {
  if (heldLocks.has(path)) throw new EngineError('messagestore', 'in_use', `history store ${path} is already in use by this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, 'wx');
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new EngineError('messagestore', 'in_use', `history store ${path} is in use by process ${owner}`, { cause: error });
      }
      await rm(path, { force: true }); // stale: its owner is gone (or was an earlier run with our pid)
    }
  }
  heldLocks.add(path);
  return async () => {
    heldLocks.delete(path);
    await rm(path, { force: true });
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
