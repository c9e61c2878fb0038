/** The MessageStore conformance suite against a real, throwaway PostgreSQL (same SQL as PGlite). */
import { afterAll, beforeAll, describe } from 'vitest';
import type { MessageStore } from '../../src/engines/messagestore/messagestore.js';
import { openPostgresStore } from '../../src/engines/messagestore/postgres.js';
import { startPostgres, type TestServer } from '../helpers/servers.js';
import { messageStoreConformance } from './messagestore.suite.js';

let pg: TestServer | undefined;

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);

afterAll(async () => {
  await pg?.dispose();
});

describe('postgres', () => {
  messageStoreConformance('postgres', async () => {
    let current: MessageStore = await openPostgresStore(pg!.url);
    return {
      get store() {
        return current;
      },
      reopen: async () => {
        await current.close();
        current = await openPostgresStore(pg!.url);
        return current;
      },
      cleanup: async () => {
        await current.close();
      },
    };
  });
});
